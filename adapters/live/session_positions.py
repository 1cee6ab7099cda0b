"""Positions a new session starts from: the journal's (spot) or the venue's (USD-M futures).

- Spot has no position at the venue, only balances shared with everything else the account
  holds: what an earlier run of the session left open is what the journal's fills add up
  to (`session_reconcile.carried_positions`), booked into the engine's manual row.
- USD-M futures reports positions (`GET /fapi/v3/positionRisk`): the venue is the truth
  and its positions are booked. When they differ from what the journal's fills add up to
  (another program traded the account, a lost journal, a liquidation), that is a
  reconciliation `mismatch` item like the order ones: shown, and trading halts until it is
  acknowledged. The venue's position is booked either way (the engine must not believe it
  is flat while it is not).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from adapters.live.order_records import Marker, Record
from adapters.live.session_reconcile import ReconcileItem, ReconcileReport, carried_positions
from engine.instruments import InstrumentRegistry
from engine.live import LiveEngine
from engine.state import IF_LOT, IF_MULT, IF_TICK, PF_COST, PF_REALIZED, PI_POS, PI_VOLUME

log = logging.getLogger(__name__)


def book_positions(
    engine: LiveEngine,
    instruments: InstrumentRegistry,
    books: Mapping[str, int],
    positions: Mapping[str, tuple[Decimal, Decimal]],
    source: str,
) -> int:
    """Book `symbol -> (signed qty, average price)` into the engine's manual row; returns
    how many were booked (a symbol not traded here, or not a whole number of lots, is
    logged and skipped)."""
    booked = 0
    for sym, (qty, avg) in sorted(positions.items()):
        if qty == 0:
            continue
        iid = books.get(sym)
        if iid is None:
            log.warning("live session: %s %s held (%s), not traded here", qty, sym, source)
            continue
        inst = instruments[iid]
        lots, ticks = qty / inst.lot_size, avg / inst.tick_size
        if lots != lots.to_integral_value():
            log.warning("live session: %s %s is not a whole number of lots", qty, sym)
            continue
        engine.set_position(iid, int(lots), float(ticks))
        booked += 1
        log.info("live session: booked %s %s at %s (%s)", qty, sym, avg, source)
    return booked


def book_fill(engine: LiveEngine, inst: int, signed_lots: int, ticks: int) -> float:
    """Book a fill the engine did not place (an inherited order's) into its manual row;
    returns the PnL it realized (quote currency).

    No engine change: the position and its average go through `LiveEngine.set_position`
    (the existing start-up API; the session calls this between two steps, on the engine's
    only thread); the realized PnL and volume are added to the manual row's portfolio cells
    with the arithmetic of `engine.portfolio.apply_fill`. The venue's commission is not
    booked (it may be in another asset; the journal has it).
    """
    st = engine.state
    row = st.pi.shape[0] - 1
    pos = int(st.pi[row, inst, PI_POS])
    cost = float(st.pf[row, inst, PF_COST])
    qty = abs(int(signed_lots))
    realized = 0.0
    if pos == 0 or (pos > 0) == (signed_lots > 0):
        cost += float(ticks) * float(signed_lots)
    else:
        closed = min(abs(pos), qty)
        avg = cost / float(pos)
        direction = 1.0 if pos > 0 else -1.0
        f = st.instf[inst]
        realized = (float(ticks) - avg) * closed * direction * f[IF_TICK] * f[IF_LOT] * f[IF_MULT]
        cost -= avg * closed * direction
        rest = qty - closed
        if rest > 0:  # the fill flips the position: the rest opens at the fill's price
            cost = float(ticks) * float(rest if signed_lots > 0 else -rest)
        elif pos + signed_lots == 0:
            cost = 0.0
    new = pos + int(signed_lots)
    engine.set_position(inst, new, cost / new if new else 0.0)
    st.pf[row, inst, PF_COST] = cost  # exactly, not through the average
    st.pf[row, inst, PF_REALIZED] += realized
    st.pi[row, inst, PI_VOLUME] += qty
    return realized


def journal_positions(records: Iterable[Record]) -> dict[str, tuple[Decimal, Decimal]]:
    """What the journal's fills left open (spot's starting positions)."""
    return carried_positions(records)


def with_venue_positions(
    report: ReconcileReport,
    venue: Mapping[str, tuple[Decimal, Decimal]],
    symbols: Iterable[str],
    now_ns: int,
) -> ReconcileReport:
    """`report` plus a `mismatch` item per symbol whose venue position differs from the
    journal's, and a `positions` marker with the venue's (journaled with the report)."""
    held = dict(report.journal_positions)
    items = list(report.items)
    for sym in sorted(set(symbols) | set(venue) | set(held)):
        v = venue.get(sym, (Decimal(0), Decimal(0)))[0]
        j = held.get(sym, Decimal(0))
        if v != j:
            items.append(
                ReconcileItem(
                    "position",
                    sym,
                    "mismatch",
                    f"fills add up to {j.normalize():f}",
                    f"position {v.normalize():f}",
                    "the venue's position is booked into the engine",
                )
            )
    data: dict[str, str | int] = {
        sym: format(qty.normalize(), "f") for sym, (qty, _) in sorted(venue.items())
    }
    marker = Marker("venue_positions", now_ns, data)  # empty: flat
    return replace(report, items=tuple(items), records=(*report.records, marker))
