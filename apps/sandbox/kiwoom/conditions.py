"""Kiwoom condition search (조건검색, kiwoom-api.md A7) as real rules evaluated on the replayed market.

Rules file (``SANDBOX_KIWOOM_CONDITIONS``, default ``apps/sandbox/kiwoom/conditions.json``)::

    {"evaluation_interval": 10,           # sandbox-clock seconds between evaluations
     "conditions": [
       {"seq": "0", "name": "등락률 2% 이상", "rule": "change_rate", "min_rate": 2.0},
       {"seq": "1", "name": "거래량 급증", "rule": "volume_surge", "minutes": 5, "factor": 2.0},
       {"seq": "2", "name": "시가 돌파", "rule": "above_open", "codes": ["005930", "000660"]}]}

Rules (a stock with no print yet today is never a member):
- ``change_rate``: (last − previous close) / previous close × 100 ≥ ``min_rate`` (may be negative).
- ``volume_surge``: the volume of the last ``minutes`` sim minutes ≥ ``factor`` × the day's average volume
  per ``minutes`` so far (day volume / minutes since 09:00 × ``minutes``), once ``minutes`` have passed.
- ``above_open``: last > today's open.
``codes`` (optional) restricts a condition to those stocks. Members are listed in universe order.

Defaults: evaluation every 10 sim seconds, so at the speeds the tests use (60–120×) membership is
re-evaluated several times per real second and ``above_open`` enters and exits within seconds.
A malformed file raises ``ConditionFileError`` when the sandbox starts.
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from apps.sandbox.replay import BUY, ReplayMarket, RunningState

RULES: dict[str, dict[str, type]] = {
    "change_rate": {"min_rate": float},
    "volume_surge": {"minutes": int, "factor": float},
    "above_open": {},
}
COMMON_KEYS = {"seq", "name", "rule", "codes"}


class ConditionFileError(ValueError):
    """The condition rules file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class ConditionRule:
    seq: str
    name: str
    rule: str
    params: dict[str, float] = field(default_factory=dict)
    codes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ConditionSet:
    evaluation_interval: float
    rules: tuple[ConditionRule, ...]

    def get(self, seq: str) -> ConditionRule | None:
        return next((r for r in self.rules if r.seq == seq), None)


@dataclass(frozen=True, slots=True)
class Alert:
    """One membership change: ``kind`` "I" (편입) or "D" (이탈)."""

    seq: str
    code: str
    kind: str
    t_ms: int
    side: str


def _rule(raw: object, where: str) -> ConditionRule:
    if not isinstance(raw, dict):
        raise ConditionFileError(f"{where}: each condition must be an object")
    seq, name, rule = raw.get("seq"), raw.get("name"), raw.get("rule")
    if not isinstance(seq, str) or not seq.isdigit() or len(seq) > 3:
        raise ConditionFileError(f"{where}: seq must be a string of 1-3 digits, got {seq!r}")
    if not isinstance(name, str) or not name.strip():
        raise ConditionFileError(f"{where}: name must be a non-empty string")
    if rule not in RULES:
        raise ConditionFileError(f"{where}: rule must be one of {', '.join(RULES)}, got {rule!r}")
    wanted = RULES[rule]
    unknown = set(raw) - COMMON_KEYS - set(wanted)
    if unknown:
        raise ConditionFileError(f"{where}: unknown keys {sorted(unknown)} for rule {rule}")
    params: dict[str, float] = {}
    for key, kind in wanted.items():
        value = raw.get(key)
        wrong_kind = kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
            raise ConditionFileError(f"{where}: {key} must be a {kind.__name__}")
        params[key] = value
    if rule == "volume_surge" and (params["minutes"] < 1 or params["factor"] <= 0):
        raise ConditionFileError(f"{where}: minutes must be >= 1 and factor > 0")
    codes = raw.get("codes")
    if codes is not None:
        if not isinstance(codes, list) or not all(isinstance(c, str) and len(c) == 6 for c in codes):
            raise ConditionFileError(f"{where}: codes must be a list of 6-character stock codes")
        codes = tuple(codes)
    return ConditionRule(seq, name.strip(), str(rule), params, codes)


def parse_conditions(raw: object, source: str = "conditions") -> ConditionSet:
    """Validate a decoded rules document; ConditionFileError on any problem."""
    if not isinstance(raw, dict):
        raise ConditionFileError(f"{source}: the top level must be an object")
    unknown = set(raw) - {"evaluation_interval", "conditions"}
    if unknown:
        raise ConditionFileError(f"{source}: unknown keys {sorted(unknown)}")
    interval = raw.get("evaluation_interval", 10)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConditionFileError(f"{source}: evaluation_interval must be a number > 0")
    items = raw.get("conditions")
    if not isinstance(items, list) or not items:
        raise ConditionFileError(f"{source}: conditions must be a non-empty list")
    rules = tuple(_rule(item, f"{source}: conditions[{i}]") for i, item in enumerate(items))
    seqs = [r.seq for r in rules]
    if len(set(seqs)) != len(seqs):
        raise ConditionFileError(f"{source}: duplicate seq values {seqs}")
    return ConditionSet(float(interval), rules)


def load_conditions(path: Path) -> ConditionSet:
    """Read and validate the rules file at ``path``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConditionFileError(f"cannot read Kiwoom condition rules {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConditionFileError(f"Kiwoom condition rules {path} are not valid JSON: {exc}") from exc
    return parse_conditions(raw, str(path))


class ConditionEngine:
    """Membership of every condition, re-evaluated from the replayed market.

    Prints are generated lazily per stock; a clock jump far into the day would make one evaluation
    generate the whole day for the universe (seconds of CPU), so ``catch_up`` generates them a slice at a
    time and evaluation waits until it reports done, keeping the event loop responsive.
    """

    def __init__(self, conditions: ConditionSet, market: ReplayMarket) -> None:
        self.conditions = conditions
        self.market = market
        self.members: dict[str, list[str]] = {r.seq: [] for r in conditions.rules}
        self.evaluated_ms: int | None = None
        if any(r.codes is None for r in conditions.rules):
            self.codes = list(market.tapes)
        else:
            wanted = {c for r in conditions.rules for c in r.codes or ()}
            self.codes = [c for c in market.tapes if c in wanted]

    def catch_up(self, now_ms: int, budget_s: float) -> bool:
        """Generate the prints every rule needs up to ``now_ms`` for at most ``budget_s``; True when done."""
        deadline = time.monotonic() + budget_s
        for code in self.codes:
            tape = self.market.tapes[code]
            target = bisect.bisect_right([b.start_s * 1000 for b in tape.bars], now_ms) - 1
            for index in range(tape.prepared, target + 1):
                tape.prepare(index)
                if time.monotonic() > deadline:
                    return index == target and code == self.codes[-1]
        return True

    def _matches(self, rule: ConditionRule, code: str, state: RunningState, now_ms: int) -> bool:
        tape = self.market.tapes[code]
        if state.count == 0:
            return False
        if rule.rule == "change_rate":
            prev = tape.prev_close
            return bool(prev) and (state.last - prev) * 100 >= rule.params["min_rate"] * prev
        if rule.rule == "above_open":
            return state.last > state.open
        minutes = int(rule.params["minutes"])
        elapsed_min = (now_ms - tape.times.open_s * 1000) / 60000
        if elapsed_min < minutes:
            return False
        recent = state.volume - tape.state_at(now_ms - minutes * 60000).volume
        average = state.volume / elapsed_min * minutes
        return recent > 0 and recent >= rule.params["factor"] * average

    def evaluate(self, now_ms: int) -> list[Alert]:
        """Recompute every condition at ``now_ms``; returns the entries and exits since last time."""
        states = {code: self.market.tapes[code].state_at(now_ms) for code in self.codes}
        alerts: list[Alert] = []
        for rule in self.conditions.rules:
            codes = [c for c in self.codes if rule.codes is None or c in rule.codes]
            now_in = [c for c in codes if self._matches(rule, c, states[c], now_ms)]
            before = set(self.members[rule.seq])
            after = set(now_in)
            for code in now_in:
                if code not in before:
                    alerts.append(self._alert(rule.seq, code, "I", states[code], now_ms))
            for code in self.members[rule.seq]:
                if code not in after:
                    alerts.append(self._alert(rule.seq, code, "D", states[code], now_ms))
            self.members[rule.seq] = now_in
        self.evaluated_ms = now_ms
        return alerts

    @staticmethod
    def _alert(seq: str, code: str, kind: str, state: RunningState, now_ms: int) -> Alert:
        t_ms = state.last_ms if state.count else now_ms
        # FID 907 매도/수구분: 1 매도, 2 매수 — the side of the stock's last print.
        side = ("2" if state.last_side == BUY else "1") if state.count else ""
        return Alert(seq, code, kind, t_ms, side)
