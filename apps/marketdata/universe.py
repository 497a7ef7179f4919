"""Where the stock universe comes from (no ORM here: plain rows in, dataclasses out).

The listing file in the data directory (``listing/krx_top50_by_marcap_*.csv``, columns
Date,Rank,Code,Name,Market,Close,Marcap,Stocks,Volume,Amount) is preferred. Without a data
directory a small built-in list of large KOSPI names is used and reported as such. An explicit list of
codes (``HOGA_UNIVERSE_CODES``) is taken from the listed stocks or ``listing/krx_all_listed_*.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

MARKET_NAMES = {"KOSPI": "KOSPI", "KOSDAQ": "KOSDAQ", "KOSDAQ GLOBAL": "KOSDAQ", "KONEX": "KONEX"}


@dataclass(frozen=True)
class ListedStock:
    code: str
    name: str
    market: str
    rank: int
    market_cap: int | None


# Facts about well-known listings (code, name, market), used only when no listing file is available.
BUILTIN_UNIVERSE: tuple[tuple[str, str, str], ...] = (
    ("005930", "삼성전자", "KOSPI"),
    ("000660", "SK하이닉스", "KOSPI"),
    ("005380", "현대차", "KOSPI"),
    ("035420", "NAVER", "KOSPI"),
    ("035720", "카카오", "KOSPI"),
    ("000270", "기아", "KOSPI"),
    ("005490", "POSCO홀딩스", "KOSPI"),
    ("051910", "LG화학", "KOSPI"),
    ("006400", "삼성SDI", "KOSPI"),
    ("068270", "셀트리온", "KOSPI"),
)


class UniverseSourceError(Exception):
    pass


def latest_listing_file(data_dir: str | Path) -> Path | None:
    folder = Path(data_dir) / "listing"
    files = sorted(folder.glob("krx_top50_by_marcap_*.csv")) if folder.is_dir() else []
    return files[-1] if files else None


def all_listed_file(data_dir: str | Path) -> Path | None:
    """The newest recorded listing of every stock (``listing/krx_all_listed_*.csv``), or None."""
    folder = Path(data_dir) / "listing"
    files = sorted(folder.glob("krx_all_listed_*.csv")) if folder.is_dir() else []
    return files[-1] if files else None


def pick_codes(codes: list[str], known: dict[str, ListedStock]) -> list[ListedStock]:
    """The universe as an explicit list: ``codes`` in their order (rank = position); UniverseSourceError naming
    every code ``known`` (a listing, or the listed stocks) does not have."""
    wanted = [c.strip().upper() for c in codes if c.strip()]
    missing = [c for c in wanted if c not in known]
    if missing:
        raise UniverseSourceError(f"not listed: {', '.join(missing[:20])}")
    seen: set[str] = set()
    out: list[ListedStock] = []
    for code in wanted:
        if code not in seen:
            seen.add(code)
            item = known[code]
            out.append(ListedStock(code=code, name=item.name, market=item.market, rank=len(out) + 1,
                                   market_cap=item.market_cap))  # fmt: skip
    return out


def read_listing(path: Path, *, limit: int) -> list[ListedStock]:
    """Parse a listing CSV; raise UniverseSourceError on a malformed file (nothing is half-loaded)."""
    rows: list[ListedStock] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.DictReader(handle), start=2):
                code = (row.get("Code") or "").strip().zfill(6)
                market = MARKET_NAMES.get((row.get("Market") or "").strip())
                if len(code) != 6 or market is None or not row.get("Name"):
                    raise UniverseSourceError(f"{path.name}:{line_no}: bad code/market/name in {row!r}")
                marcap = (row.get("Marcap") or "").strip()
                rows.append(
                    ListedStock(
                        code=code,
                        name=row["Name"].strip(),
                        market=market,
                        rank=int(row["Rank"]),
                        market_cap=int(float(marcap)) if marcap else None,
                    )
                )
    except (OSError, KeyError, ValueError) as exc:
        raise UniverseSourceError(f"cannot read {path}: {exc}") from exc
    rows.sort(key=lambda r: r.rank)
    return rows[:limit]


def builtin_universe(*, limit: int) -> list[ListedStock]:
    return [
        ListedStock(code=code, name=name, market=market, rank=rank, market_cap=None)
        for rank, (code, name, market) in enumerate(BUILTIN_UNIVERSE[:limit], start=1)
    ]
