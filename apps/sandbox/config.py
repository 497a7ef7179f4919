"""Plain configuration of the sandbox broker.

The core never reads Django settings: ``config_from_settings()`` is the only bridge, so tests build
``SandboxConfig`` directly (ports 0, high speed, short intervals).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from apps.core.demo_credentials import DEMO_CREDENTIALS, KIWOOM_DEMO_CREDENTIALS
from apps.core.krx.rules import TICK_TABLE_2023_EFFECTIVE

MODES: tuple[str, str] = ("real", "paper")
PAPER_HOLIDAY_MODES: tuple[str, str] = ("refuse", "serve")
CLOCK_MODES: tuple[str, str] = ("replay", "wallclock")
KIWOOM_MODES: tuple[str, str] = ("real", "mock")
#: The condition rules shipped with the sandbox (``SANDBOX_KIWOOM_CONDITIONS`` empty).
DEFAULT_KIWOOM_CONDITIONS = Path(__file__).resolve().parent / "kiwoom" / "conditions.json"


@dataclass(frozen=True, slots=True)
class AppCredential:
    """One app key pair registered for one mode."""

    appkey: str
    appsecret: str
    mode: str


def parse_credentials(items: list[str] | tuple[str, ...]) -> tuple[AppCredential, ...]:
    """Parse ``"appkey:appsecret:real|paper"`` strings; raises ValueError on a malformed entry."""
    out: list[AppCredential] = []
    for item in items:
        parts = item.strip().split(":")
        if len(parts) != 3 or parts[2] not in MODES or not parts[0] or not parts[1]:
            raise ValueError(f"SANDBOX_APP_CREDENTIALS entry must be appkey:appsecret:real|paper, got {item!r}")
        out.append(AppCredential(parts[0], parts[1], parts[2]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TapeDensity:
    """How many trade prints the replay makes out of a bar's volume (see ``apps/sandbox/replay.py``).

    ``scale`` multiplies the calibrated real-market print count (it divides the mean print size): 1.0 is
    real-market density. ``max_per_minute`` (0 = none) caps a bar's expected prints per minute by raising
    its mean print size; the light tape caps at 20 a minute per stock, the sandbox's former fixed rate.
    """

    scale: float = 1.0
    max_per_minute: float = 0.0

    def __post_init__(self) -> None:
        if not MIN_DENSITY_SCALE <= self.scale <= MAX_DENSITY_SCALE:
            raise ValueError(f"tape density must be between {MIN_DENSITY_SCALE:g} and {MAX_DENSITY_SCALE:g}")
        if self.max_per_minute < 0:
            raise ValueError("tape density cap must be >= 0")

    @classmethod
    def parse(cls, text: str | float) -> TapeDensity:
        """``real`` (the default), ``light``, or a positive multiplier of the real density (``3``, ``0.5``)."""
        raw = str(text).strip().lower()
        if raw in ("", "real"):
            return REAL_TAPE
        if raw == "light":
            return LIGHT_TAPE
        try:
            scale = float(raw)
        except ValueError:
            raise ValueError(f"SANDBOX_TAPE_DENSITY must be real, light or a number, got {text!r}") from None
        return cls(scale=scale)

    def label(self) -> str:
        if self == REAL_TAPE:
            return "real"
        if self == LIGHT_TAPE:
            return "light"
        return f"{self.scale:g}x real" + (f", <= {self.max_per_minute:g}/min" if self.max_per_minute else "")


#: Multipliers outside this range are refused: above 10 the mean print of a high-priced stock falls below
#: one share; below 0.01 the tape is no longer a tape.
MIN_DENSITY_SCALE = 0.01
MAX_DENSITY_SCALE = 10.0
REAL_TAPE = TapeDensity()
#: The tests' tape: at most about 20 prints a minute per stock (bars with less volume print less).
LIGHT_TAPE = TapeDensity(scale=1.0, max_per_minute=20.0)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything the sandbox needs; immutable for the life of a server."""

    data_dir: Path | None = None
    universe_size: int = 50
    host: str = "127.0.0.1"
    real_rest_port: int = 19443
    paper_rest_port: int = 29443
    real_ws_port: int = 21000
    paper_ws_port: int = 31000
    real_rate_limit: float = 20.0
    paper_rate_limit: float = 2.0
    clock_mode: str = "replay"
    speed: float = 1.0
    replay_date: dt.date | None = None
    seed: int = 20260220
    ws_max_registrations: int = 41
    pingpong_interval: float = 10.0
    pingpong_timeout: float = 110.0
    token_error_status: int = 500
    token_rate_status: int = 403
    app_credentials: tuple[AppCredential, ...] = ()
    admin_token: str = ""
    #: Token lifetime (KIS: 1 day) and the window in which a repeated request returns the same token.
    token_lifetime_s: float = 86400.0
    token_reuse_s: float = 6 * 3600.0
    #: Minimum interval between two new issuances for one app key (KIS: 1/min, EGW00133).
    token_issue_interval_s: float = 60.0
    #: Real seconds between two WS flushes; ticks inside one flush share a multi-record frame.
    ws_flush_interval_s: float = 0.05
    #: Bounded per-connection send queue; a client that lets it overflow is dropped.
    ws_queue_size: int = 2000
    #: Seconds between two heartbeat log lines of each WebSocket listener's send loop.
    ws_heartbeat_s: float = 60.0
    #: When set, a file to which every H0STCNT0 print sent is appended as ``code cum_volume price epoch_s``
    #: (the wall time its frame was handed to the socket), for end-to-end latency measurements.
    send_log: Path | None = None
    #: Prints per bar: real-market density by default, ``LIGHT_TAPE`` in the tests.
    tape_density: TapeDensity = REAL_TAPE
    tick_table_effective: dt.date = TICK_TABLE_2023_EFFECTIVE
    # --- Kiwoom (kiwoom-api.md Part A): one REST and one WS listener serve real and mock keys. ---
    #: 0 = any free port: code that builds a config directly without naming the Kiwoom ports (tests of
    #: the KIS side) never collides with a running sandbox; settings give 19446/19447.
    kiwoom_rest_port: int = 0
    kiwoom_ws_port: int = 0
    #: Requests per second per app key and category (조회 / 주문); Kiwoom quotes 5/s (UNCONFIRMED).
    kiwoom_rate_limit: float = 5.0
    #: HTTP status of a 1700 rate-limit answer (429 or 200 seen live; UNCONFIRMED).
    kiwoom_rate_status: int = 429
    #: Condition rules file; None = ``apps/sandbox/kiwoom/conditions.json``.
    kiwoom_conditions: Path | None = None
    #: Seconds between server PINGs, and without an echo before SYSTEM R10002 (both UNCONFIRMED).
    kiwoom_ping_interval: float = 10.0
    kiwoom_ping_timeout: float = 60.0
    #: Rows per CNSRREQ search_type 0 page (small, so clients exercise body cont_yn/next_key paging).
    kiwoom_condition_page_size: int = 20
    #: Rows per ka10081 / ka10080 page before cont-yn: Y (UNCONFIRMED page sizes).
    kiwoom_daily_rows: int = 600
    kiwoom_minute_rows: int = 900
    #: (item, type) registrations one WS connection may hold (UNCONFIRMED; "등록 종목수 초과" beyond).
    kiwoom_ws_max_registrations: int = 200
    kiwoom_token_lifetime_s: float = 86400.0
    #: Extra Kiwoom key pairs (mode "real" or "mock") besides the demo pairs.
    kiwoom_app_credentials: tuple[AppCredential, ...] = ()
    # --- The calendar (apps/sandbox/calendar.py) and its holiday query, CTCA0903R. ---
    #: Dates the sandbox's calendar calls closed on top of the KRX facts Hoga ships (rehearse a closure).
    closed_days: tuple[dt.date, ...] = ()
    #: The paper listener's answer to the holiday query: "refuse" (EGW02006 "모의투자 TR 이 아닙니다.", as
    #: reported for KIS; UNCONFIRMED) or "serve" (answer it like the real listener).
    paper_holiday: str = "refuse"
    #: Dates per holiday-query page (24 in a captured real response) and how far ahead the sandbox answers.
    holiday_page_rows: int = 24
    holiday_horizon_days: int = 366
    #: ``Content-Type`` of every KIS answer (kis-api.md §3.2; the charset's case is UNCONFIRMED).
    kis_content_type: str = "application/json; charset=utf-8"
    #: KRW every sandbox trading account (KIS order TRs) starts with.
    order_deposit: int = 100_000_000
    # --- The market day (apps/sandbox/day.py). ---
    #: NXT-eligible stocks (empty: ``apps.sandbox.day.DEFAULT_NXT_ELIGIBLE``, an approximate subset).
    nxt_eligible: tuple[str, ...] = ()
    #: KOSPI200 members for the dynamic VI threshold (empty: the universe's top KOSPI market caps, approximate).
    kospi200: tuple[str, ...] = ()
    #: VI thresholds in percent (krx-rules §3.5 (verify)): static, dynamic for KOSPI200 members / the others.
    vi_static_pct: float = 10.0
    vi_dynamic_pct_kospi200: float = 3.0
    vi_dynamic_pct_other: float = 6.0
    #: Serve NXT trades (H0NXCNT0) on the paper listener too. KIS paper has no NXT feeds (kis-api.md §7): off by
    #: default; on for a paper stack that must see NXT prints (Hoga's own paper engine routes to NXT).
    paper_nxt: bool = False

    def __post_init__(self) -> None:
        if self.clock_mode not in CLOCK_MODES:
            raise ValueError(f"clock mode must be one of {CLOCK_MODES}, got {self.clock_mode!r}")
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.real_rate_limit <= 0 or self.paper_rate_limit <= 0 or self.kiwoom_rate_limit <= 0:
            raise ValueError("rate limits must be > 0")
        if self.kiwoom_ping_interval <= 0 or self.kiwoom_ping_timeout <= 0:
            raise ValueError("Kiwoom PING interval and timeout must be > 0")
        if self.kiwoom_condition_page_size < 1 or self.kiwoom_daily_rows < 1 or self.kiwoom_minute_rows < 1:
            raise ValueError("Kiwoom page sizes must be >= 1")
        if any(c.mode not in KIWOOM_MODES for c in self.kiwoom_app_credentials):
            raise ValueError(f"Kiwoom credential modes must be one of {KIWOOM_MODES}")
        if self.paper_holiday not in PAPER_HOLIDAY_MODES:
            raise ValueError(f"SANDBOX_PAPER_HOLIDAY must be one of {PAPER_HOLIDAY_MODES}, got {self.paper_holiday!r}")
        if self.holiday_page_rows < 1 or self.holiday_horizon_days < 1:
            raise ValueError("holiday page rows and horizon must be >= 1")

    def rate_limit(self, mode: str) -> float:
        """Requests per second per app key in ``mode``."""
        return self.real_rate_limit if mode == "real" else self.paper_rate_limit

    def all_credentials(self) -> tuple[AppCredential, ...]:
        """Demo pairs plus the configured extra pairs."""
        demo = tuple(AppCredential(k, s, m) for k, s, m in DEMO_CREDENTIALS)
        return demo + self.app_credentials

    def kiwoom_credentials(self) -> tuple[AppCredential, ...]:
        """Kiwoom demo pairs plus the configured extra pairs (``appsecret`` holds the secretkey)."""
        demo = tuple(AppCredential(k, s, m) for k, s, m in KIWOOM_DEMO_CREDENTIALS)
        return demo + self.kiwoom_app_credentials

    def kiwoom_conditions_path(self) -> Path:
        return self.kiwoom_conditions or DEFAULT_KIWOOM_CONDITIONS


def parse_closed_days(items: list[str] | tuple[str, ...]) -> tuple[dt.date, ...]:
    """``SANDBOX_CLOSED_DAYS`` entries (YYYY-MM-DD) as dates; ValueError naming a malformed entry."""
    out = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            out.append(dt.date.fromisoformat(text))
        except ValueError as exc:
            raise ValueError(f"SANDBOX_CLOSED_DAYS entry must be YYYY-MM-DD, got {item!r}") from exc
    return tuple(sorted(set(out)))


def config_from_settings(**overrides: object) -> SandboxConfig:
    """Build the config from ``django.conf.settings`` (the only place settings are read).

    ``overrides`` replace individual fields (used by ``runsandbox`` command-line options).
    """
    from django.conf import settings

    replay = str(getattr(settings, "SANDBOX_REPLAY_DATE", "") or "")
    data_dir = str(getattr(settings, "HOGA_DATA_DIR", "") or "")
    conditions = str(getattr(settings, "SANDBOX_KIWOOM_CONDITIONS", "") or "")
    values: dict[str, object] = {
        "data_dir": Path(data_dir) if data_dir else None,
        "universe_size": int(settings.UNIVERSE_SIZE),
        "host": settings.SANDBOX_HOST,
        "real_rest_port": int(settings.SANDBOX_REAL_REST_PORT),
        "paper_rest_port": int(settings.SANDBOX_PAPER_REST_PORT),
        "real_ws_port": int(settings.SANDBOX_REAL_WS_PORT),
        "paper_ws_port": int(settings.SANDBOX_PAPER_WS_PORT),
        "real_rate_limit": float(settings.SANDBOX_REAL_RATE_LIMIT),
        "paper_rate_limit": float(settings.SANDBOX_PAPER_RATE_LIMIT),
        "clock_mode": settings.SANDBOX_CLOCK,
        "speed": float(settings.SANDBOX_SPEED),
        "replay_date": dt.date.fromisoformat(replay) if replay else None,
        "seed": int(settings.SANDBOX_SEED),
        "tape_density": TapeDensity.parse(getattr(settings, "SANDBOX_TAPE_DENSITY", "real")),
        "ws_max_registrations": int(settings.SANDBOX_WS_MAX_REGISTRATIONS),
        "pingpong_interval": float(settings.SANDBOX_PINGPONG_INTERVAL),
        "pingpong_timeout": float(settings.SANDBOX_PINGPONG_TIMEOUT),
        "ws_heartbeat_s": float(getattr(settings, "SANDBOX_WS_HEARTBEAT", 60.0)),
        "send_log": Path(settings.SANDBOX_SEND_LOG) if getattr(settings, "SANDBOX_SEND_LOG", "") else None,
        "token_error_status": int(settings.SANDBOX_TOKEN_ERROR_STATUS),
        "token_rate_status": int(settings.SANDBOX_TOKEN_RATE_STATUS),
        "app_credentials": parse_credentials(list(settings.SANDBOX_APP_CREDENTIALS)),
        "admin_token": str(getattr(settings, "SANDBOX_ADMIN_TOKEN", "") or ""),
        "kiwoom_rest_port": int(settings.SANDBOX_KIWOOM_REST_PORT),
        "kiwoom_ws_port": int(settings.SANDBOX_KIWOOM_WS_PORT),
        "kiwoom_rate_limit": float(settings.SANDBOX_KIWOOM_RATE_LIMIT),
        "kiwoom_rate_status": int(settings.SANDBOX_KIWOOM_RATE_STATUS),
        "kiwoom_conditions": Path(conditions) if conditions else None,
        "kiwoom_ping_interval": float(settings.SANDBOX_KIWOOM_PING_INTERVAL),
        "kiwoom_ping_timeout": float(settings.SANDBOX_KIWOOM_PING_TIMEOUT),
        "closed_days": parse_closed_days(list(settings.SANDBOX_CLOSED_DAYS)),
        "paper_holiday": str(settings.SANDBOX_PAPER_HOLIDAY),
        "order_deposit": int(getattr(settings, "SANDBOX_ORDER_DEPOSIT", 100_000_000)),
        "kis_content_type": str(getattr(settings, "SANDBOX_KIS_CONTENT_TYPE", "application/json; charset=utf-8")),
        "nxt_eligible": tuple(c.strip() for c in getattr(settings, "NXT_ELIGIBLE_CODES", []) if c.strip()),
        "kospi200": tuple(c.strip() for c in getattr(settings, "KOSPI200_CODES", []) if c.strip()),
        # The VI thresholds Hoga's rules use (apps.core.krx.vi), so the replay and the paper engine agree.
        "vi_static_pct": float(getattr(settings, "VI_STATIC_PCT", 10.0)),
        "vi_dynamic_pct_kospi200": float(getattr(settings, "VI_DYNAMIC_KOSPI200_PCT", 3.0)),
        "vi_dynamic_pct_other": float(getattr(settings, "VI_DYNAMIC_OTHER_PCT", 6.0)),
        "paper_nxt": bool(getattr(settings, "SANDBOX_PAPER_NXT", False)),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SandboxConfig(**values)  # type: ignore[arg-type]


__all__ = [
    "LIGHT_TAPE",
    "REAL_TAPE",
    "AppCredential",
    "SandboxConfig",
    "TapeDensity",
    "config_from_settings",
    "parse_closed_days",
    "parse_credentials",
]
