"""KIS real-time records of the whole market day (kis-api.md §6.5–§6.6, §7) built from ``apps.sandbox.day``.

Per stock and flush window (after_ms, until_ms], in time order:

- ``H0STCNT0`` (KRX trades): the replayed tape's prints minus those inside a VI, each VI's single print, and the
  synthetic pre-open closing-price trades. NEW_MKOP_CLS_CODE carries the print's phase
  (``day.NEW_MKOP_BY_PHASE``), TRHT_YN "N", VI_STND_PRC the static VI reference (the last single price).
- ``H0STASP0`` (KRX book): the tape's book updates, plus one record every 10 s while a call builds (the opening
  auction's indicative period, the closing auction, a VI) with HOUR_CLS_CODE B/A/C and ANTC_CNPR/ANTC_CNQN the
  expected price and quantity.
- ``H0STOUP0`` (KRX off-hours trades, from the close): the synthetic post-close closing-price trades and the
  after-hours single-price calls. ``H0STOAA0`` (off-hours book): the day's last book every 10 s while an
  after-hours call builds, HOUR_CLS_CODE D, with the expected price. The layouts of these two TRs are not in
  the reference: the sandbox sends the H0STCNT0 (46) and H0STASP0 (59) layouts (UNCONFIRMED).
- ``H0STANC0`` (expected trades): every 10-s expected-price step of every call, HOUR_CLS_CODE B/A/C/D.
- ``H0STMKO0`` (market operation): each KRX phase change, each VI start (VI_CLS_CODE 1 static / 2 dynamic) and
  end (N).
- ``H0NXCNT0`` (NXT trades, NXT-eligible stocks only): the mirrored main-market prints (none inside a KRX VI:
  NXT mirrors KRX's tape) and the synthetic pre-market and after-market prints.
"""

from __future__ import annotations

from apps.core.krx import phases as P
from apps.sandbox import quotes
from apps.sandbox.day import (
    EXPECTED_HOUR_CLS,
    MKOP_CLS_BY_PHASE,
    NEW_MKOP_BY_PHASE,
    VI_CLS_CODES,
    DayModel,
    PhasePrint,
    krx_now,
    phase_changes,
)
from apps.sandbox.replay import BUY, OrderBook, RunningState, Tick
from apps.sandbox.venues import VenueModel, nxt_book, nxt_tick

STEP_MS = 10_000
#: Phases whose expected prices the KRX book (H0STASP0) carries; the after-hours calls' go on H0STOAA0.
BOOK_CALLS = frozenset({P.OPENING_AUCTION, P.CLOSING_AUCTION, P.VI_AUCTION})

Timed = tuple[int, list[str]]


def expected_steps(day: DayModel, after_ms: int, until_ms: int) -> list[tuple[int, str, int, int]]:
    """(t_ms, phase, expected price, expected quantity) at each 10-s step in (after_ms, until_ms] while a call
    builds (the opening auction's indicative period, the closing auction, a VI, an after-hours call)."""
    out = []
    t = (after_ms // STEP_MS + 1) * STEP_MS
    open_ms, cont_end_ms = day.times.open_s * 1000, day.times.continuous_end_s * 1000
    while t <= until_ms:
        if open_ms <= t < cont_end_ms:
            if not day.has_vi(until_ms):
                t = -(-cont_end_ms // STEP_MS) * STEP_MS  # no VI: nothing builds during continuous trading
                continue
            if day.vi_at(t) is None:
                t += STEP_MS
                continue
        found = day.expected_at(t)
        if found is not None:
            phase, exp = found
            if exp.price:
                out.append((t, phase, exp.price, exp.quantity))
        t += STEP_MS
    return out


def _state_with(base: RunningState, prints: list[PhasePrint], t_ms: int) -> RunningState:
    state = base.copy()
    for p in prints:
        if p.t_ms > t_ms:
            break
        state.apply(p.tick)
    return state


def krx_state_at(day: DayModel, t_ms: int) -> RunningState:
    """KRX running state for a synthetic print at ``t_ms``: before the open, the pre-open closing-price trades
    only; after the close, the day's state plus the closing-price and after-hours prints so far."""
    tape = day.tape
    extra = day.krx_extra()
    if t_ms < tape.times.open_s * 1000:
        return _state_with(RunningState(), [p for p in extra if p.phase == P.PRE_CLOSE_PRICE], t_ms)
    return _state_with(tape.state_at(t_ms), [p for p in extra if p.phase != P.PRE_CLOSE_PRICE], t_ms)


def krx_records(
    day: DayModel,
    after_ms: int,
    until_ms: int,
    *,
    trades: bool,
    books: bool,
    ladders: dict[tuple[int, ...], list[str]] | None = None,
) -> tuple[list[list[str]], list[list[str]]]:
    """(H0STCNT0 records, H0STASP0 records) of one stock in (after_ms, until_ms], in time order."""
    tape = day.tape
    vi_live = day.has_vi(until_ms)
    open_ms, cont_end_ms = tape.times.open_s * 1000, tape.times.continuous_end_s * 1000
    trade_out: list[Timed] = []
    book_out: list[Timed] = []
    cnt0, asp0 = quotes.cnt0_record, quotes.asp0_record
    for ev in tape.events(after_ms, until_ms):
        t = ev.t_ms
        vi = day.vi_at(t) if vi_live else None
        if trades and ev.tick is not None:
            if vi is not None and open_ms < t < cont_end_ms:
                pass  # inside a VI: the print is part of the VI's call
            elif t == open_ms or t >= cont_end_ms or vi_live:
                phase = day.print_phase(t)
                ref = day.static_reference(t, ev.state)
                trade_out.append(
                    (t, cnt0(tape, ev.tick, ev.state, ev.book, mkop=NEW_MKOP_BY_PHASE[phase], vi_reference=ref))
                )
            else:
                trade_out.append((t, cnt0(tape, ev.tick, ev.state, ev.book)))
        if books:
            expected = None
            if vi is not None:
                found = day.expected_at(t)
                if found is not None:
                    expected = (EXPECTED_HOUR_CLS[P.VI_AUCTION], found[1].price, found[1].quantity)
            book_out.append((t, asp0(tape, t, ev.state, ev.book, ev.prev_book, ladders, expected=expected)))
    if trades:
        if vi_live:
            for ep in day.episodes(until_ms):
                if after_ms < ep.end_ms <= until_ms:
                    st = tape.state_at(ep.end_ms)
                    book = tape.order_book_at(ep.end_ms)
                    tick = Tick(ep.end_ms, ep.price, ep.volume, BUY)
                    rec = cnt0(tape, tick, st, book, mkop=NEW_MKOP_BY_PHASE[P.VI_AUCTION], vi_reference=ep.price)
                    trade_out.append((ep.end_ms, rec))
        for p in day.between(day.krx_extra(), after_ms, until_ms):
            if p.phase == P.PRE_CLOSE_PRICE:
                st = krx_state_at(day, p.t_ms)
                rec = cnt0(
                    tape,
                    p.tick,
                    st,
                    tape.order_book_at(p.t_ms),
                    mkop=NEW_MKOP_BY_PHASE[p.phase],
                    vi_reference=tape.prev_close,
                )
                trade_out.append((p.t_ms, rec))
    if books:
        for t, phase, price, qty in expected_steps(day, after_ms, until_ms):
            if phase in BOOK_CALLS and not (phase == P.VI_AUCTION and any(b[0] == t for b in book_out[-3:])):
                st = tape.state_at(t)
                book = tape.order_book_at(t)
                book_out.append(
                    (t, asp0(tape, t, st, book, book, ladders, expected=(EXPECTED_HOUR_CLS[phase], price, qty)))
                )
    trade_out.sort(key=lambda r: r[0])
    book_out.sort(key=lambda r: r[0])
    return [r for _t, r in trade_out], [r for _t, r in book_out]


def off_hours_records(day: DayModel, after_ms: int, until_ms: int, *, trades: bool, books: bool):
    """(H0STOUP0 records, H0STOAA0 records): the post-close closing-price trades and the after-hours calls, and
    the off-hours book while an after-hours call builds."""
    tape = day.tape
    trade_out: list[list[str]] = []
    book_out: list[list[str]] = []
    if trades:
        for p in day.between(day.krx_extra(), after_ms, until_ms):
            if p.phase in (P.POST_CLOSE_PRICE, P.AFTER_HOURS_SINGLE):
                st = krx_state_at(day, p.t_ms)
                trade_out.append(
                    quotes.cnt0_record(
                        tape,
                        p.tick,
                        st,
                        tape.order_book_at(p.t_ms),
                        mkop=NEW_MKOP_BY_PHASE[p.phase],
                        vi_reference=day.today_close,
                    )
                )
    if books:
        for t, phase, price, qty in expected_steps(day, max(after_ms, tape.times.close_s * 1000), until_ms):
            if phase == P.AFTER_HOURS_SINGLE:
                st = krx_state_at(day, t)
                book = tape.order_book_at(t)
                record = quotes.asp0_record(tape, t, st, book, book, expected=(EXPECTED_HOUR_CLS[phase], price, qty))
                record[45], record[46] = str(book.total_ask), str(book.total_bid)  # OVTM_TOTAL_ASKP/BIDP_RSQN
                book_out.append(record)
    return trade_out, book_out


def anc0_records(day: DayModel, after_ms: int, until_ms: int) -> list[list[str]]:
    """H0STANC0 records (the H0STCNT0 columns) for every expected-price step of every call in (after_ms,
    until_ms]: STCK_PRPR the expected price, CNTG_VOL the expected quantity, HOUR_CLS_CODE B/A/C/D."""
    tape = day.tape
    out = []
    for t, phase, price, qty in expected_steps(day, after_ms, until_ms):
        st = krx_state_at(day, t) if phase in (P.OPENING_AUCTION, P.AFTER_HOURS_SINGLE) else tape.state_at(t)
        book = tape.order_book_at(t)
        base = st.copy()
        base.apply(Tick(t, price, max(1, qty), BUY))
        record = quotes.cnt0_record(
            tape,
            Tick(t, price, qty, BUY),
            base,
            book,
            mkop=NEW_MKOP_BY_PHASE[phase],
            hour_cls=EXPECTED_HOUR_CLS[phase],
            vi_reference=day.static_reference(t, st),
        )
        out.append(record)
    return out


def mko0_record(code: str, phase: str, vi_kind: str = "", *, halted: bool = False) -> list[str]:
    """One H0STMKO0 record (11 fields): MKOP_CLS_CODE per phase (``day.MKOP_CLS_BY_PHASE``), VI_CLS_CODE."""
    mkop = MKOP_CLS_BY_PHASE.get(phase, "129")
    return [code, "Y" if halted else "N", "", mkop, mkop, "", "", "55", VI_CLS_CODES[vi_kind], "N", ""]


def mko0_records(day: DayModel, after_ms: int, until_ms: int) -> list[list[str]]:
    """H0STMKO0 records for every KRX phase change, VI start and VI end in (after_ms, until_ms], in time order."""
    tape = day.tape
    out: list[Timed] = []
    for at_s, venue, phase in phase_changes(tape.times):
        at_ms = at_s * 1000
        if venue == P.KRX and after_ms < at_ms <= until_ms:
            out.append((at_ms, mko0_record(tape.code, phase)))
    if day.has_vi(until_ms):
        running = day.vi_at(until_ms)
        for ep in day.episodes(until_ms) + ([running] if running is not None else []):
            if after_ms < ep.start_ms <= until_ms and not any(r[0] == ep.start_ms for r in out):
                out.append((ep.start_ms, mko0_record(tape.code, P.VI_AUCTION, ep.kind)))
            if after_ms < ep.end_ms <= until_ms:
                phase = krx_now(tape.times, ep.end_ms / 1000).phase
                out.append((ep.end_ms, mko0_record(tape.code, phase)))
    out.sort(key=lambda r: r[0])
    return [r for _t, r in out]


def nxt_records(day: DayModel, venues: VenueModel, after_ms: int, until_ms: int) -> list[list[str]]:
    """H0NXCNT0 records: the mirrored main-market prints (outside KRX VIs) and the synthetic pre/after-market
    prints of an NXT-eligible stock; NEW_MKOP_CLS_CODE carries the NXT phase."""
    if not day.nxt_eligible:
        return []
    tape = day.tape
    out: list[Timed] = []
    vi_live = day.has_vi(until_ms)
    nxt = venues.state(tape, "NXT", after_ms)
    for ev in tape.events(after_ms, until_ms):
        mirrored = nxt_tick(tape, ev.tick) if ev.tick is not None else None
        if mirrored is None or (vi_live and day.vi_at(ev.t_ms) is not None):
            continue
        nxt.apply(mirrored)
        out.append((ev.t_ms, quotes.cnt0_record(tape, mirrored, nxt, nxt_book(ev.book))))
    extras = day.nxt_extra()
    for p in day.between(extras, after_ms, until_ms):
        base = venues.state(tape, "NXT", p.t_ms) if p.t_ms >= day.times.open_s * 1000 else RunningState()
        st = _state_with(base, [x for x in extras if (x.phase == P.NXT_AFTER) == (p.phase == P.NXT_AFTER)], p.t_ms)
        book: OrderBook = nxt_book(tape.order_book_at(p.t_ms))
        out.append(
            (
                p.t_ms,
                quotes.cnt0_record(
                    tape, p.tick, st, book, mkop=NEW_MKOP_BY_PHASE[p.phase], vi_reference=tape.prev_close
                ),
            )
        )
    out.sort(key=lambda r: r[0])
    return [r for _t, r in out]
