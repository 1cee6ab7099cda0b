"""Orders an earlier run left open at the venue ("inherited"): cancelled at the stop.

The new engine does not manage them (it never placed them), so the session keeps two maps:
`inherited` (venue client id -> (journal client id, symbol)) and `cancels` (the client id
of each cancel request sent for one -> its venue client id). These functions build the
cancel requests and turn the venue's events about those orders into journal records,
under the order's journal id, so a later restart's `order_state.rebuild` sees their end.
Their fills are booked into the engine's manual row (`book_inherited_fill`), where the
start put the position they belong to: the engine's position keeps following the venue's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from adapters.live.client_ids import ClientIdAllocator
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.order_records import Event, Intent, Marker, Record, Reply
from adapters.live.session_orders import Prepared
from adapters.live.session_positions import book_fill
from engine.instruments import InstrumentRegistry
from engine.live import LiveEngine

log = logging.getLogger(__name__)


def cancel_requests(
    inherited: dict[str, tuple[str, str]],
    cancels: dict[str, str],
    ids: ClientIdAllocator,
    now_ns: int,
) -> list[Prepared]:
    """A cancel request (and its journal intent) per inherited order; `cancels` notes
    each one's target. Journal the intents before sending them."""
    out = []
    for venue_cid, (root, symbol) in inherited.items():
        cid = ids.next()
        req = OrderRequest("cancel", cid, symbol, orig_client_id=venue_cid)
        intent = Intent("cancel", cid, symbol, now_ns, orig_client_id=root)
        out.append(Prepared(req, intent, -1))
        cancels[cid] = venue_cid
    return out


def inherited_event(
    ev: ExecEvent, inherited: dict[str, tuple[str, str]], cancels: dict[str, str]
) -> list[Record]:
    """The journal records of an event about an order this run did not place: inherited
    ones under their journal id (an end removes them from `inherited`); anything else is
    only noted in a `foreign_event` marker."""
    ts = ev.recv_ts_ns or time.time_ns()
    if ev.kind == "cancel_rejected" and ev.client_id in cancels:
        del cancels[ev.client_id]
        return [Reply(ev.client_id, "reject", ts, code=ev.code, message=ev.message[:200])]
    entry = inherited.get(ev.client_id)
    if entry is None:
        return [Marker("foreign_event", ts, {"client_id": ev.client_id, "kind": ev.kind})]
    root, _ = entry
    if ev.kind == "fill" and ev.qty is not None and ev.price is not None:
        return [
            Event(
                root,
                "trade",
                ts,
                venue_order_id=ev.venue_order_id,
                trade_id=ev.trade_id or f"{ev.venue_order_id}-{ev.cum_qty}",
                last_qty=format(ev.qty, "f"),
                last_price=format(ev.price, "f"),
            )
        ]
    if ev.kind in ("canceled", "expired"):
        del inherited[ev.client_id]
        out: list[Record] = [Event(root, ev.kind, ts, venue_order_id=ev.venue_order_id)]  # type: ignore[arg-type]
        for cancel_cid, target in list(cancels.items()):
            if target == ev.client_id:
                del cancels[cancel_cid]
                out.append(Reply(cancel_cid, "ack", ts, venue_order_id=ev.venue_order_id))
        return out
    return []


def book_inherited_fill(
    engine: LiveEngine | None,
    instruments: InstrumentRegistry,
    books: Mapping[str, int],
    ev: ExecEvent,
    symbol: str,
) -> bool:
    """Book an inherited order's fill into the engine's manual row
    (`session_positions.book_fill`); returns False (and logs why) when it cannot."""
    iid = books.get(symbol)
    if iid is None or engine is None or ev.qty is None or ev.price is None:
        log.warning("live session: inherited fill of %s not booked: %s", ev.client_id, ev)
        return False
    if ev.side not in ("buy", "sell"):
        log.warning("live session: inherited fill of %s has no side: not booked", ev.client_id)
        return False
    inst = instruments[iid]
    try:
        lots, ticks = inst.size_to_lots(ev.qty), inst.price_to_ticks(ev.price)
    except Exception as exc:  # off the instrument's grid: say so, do not guess
        log.warning("live session: inherited fill of %s not booked: %s", ev.client_id, exc)
        return False
    book_fill(engine, iid, lots if ev.side == "buy" else -lots, ticks)
    log.info(
        "live session: inherited %s filled %s %s at %s (booked, manual row)",
        ev.client_id,
        ev.side,
        ev.qty,
        ev.price,
    )
    return True
