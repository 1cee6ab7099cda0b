"""Parity: one recorded session through the live path (sandbox over loopback) and a backtest.

The live run: LiveSession -> loopback WebSockets -> the sandbox, whose venue is the
engine's venue model with zero latency, fed by the replay at `SPEED` times recorded time;
the only latency is the real one of the loopback path (wall clock, so SPEED times as much
market time). The backtest: a plain `Engine` over exactly the events the sandbox's venue
replays, the same strategy and parameters, and a fixed latency: half the live run's median
order round trip, in market time.

What must hold (asserted): the same trades in the same order (a filled buy, then a filled
sell, of the same quantity, each round trip); every fill, in both runs, at a price the
recorded book offered (a buy at or below its limit, at an ask price the recording shows; a
sell symmetrically); both runs end flat. What need not (see /work/notes/live-glue.md):
fill prices and times (the live latency varies per order, and the book can move between
decision and arrival differently), the number of IOC retries (an order that arrives after
the book moved beyond its limit expires and is sent again), hence the PnL, which is
printed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.live.sandbox_replay import Replay, replay_from_capture
from engine.codes import R_FILL, R_NEW, SIDE_BUY_CODE, ST_ACCEPTED
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.events import KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT, KIND_QUOTE, SIDE_BUY, SIDE_SELL
from engine.runner import Engine
from tests.adapters.live.session_helpers import (
    CheckedVenue,
    done,
    position,
    session_for,
    touch_trader,
)

pytestmark = pytest.mark.usefixtures("warm_engine")

SPEED = 5
PARAMS = {"qty": 100, "at": 3, "rounds": 4, "every": 150, "slip": 500}
"""Four round trips of IOC orders at the touch, marketable by 500 ticks (5 USDT, 8 bp) so that
a book that moved during the latency still fills them (the fill is at the book's
price, the limit is only the cap)."""


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=3000
    )


def orders_of(journal: dict[str, np.ndarray], side_of: dict[int, int]) -> list[dict]:
    """Orders from an engine journal: time sent, side, limit, quantity, ack time, fills."""
    out: dict[int, dict] = {}
    for k in range(len(journal["oid"])):
        oid, reason = int(journal["oid"][k]), int(journal["reason"][k])
        if reason == R_NEW:
            out[oid] = {
                "ts": int(journal["ts"][k]),
                "side": side_of.get(oid, 0),
                "limit": int(journal["price"][k]),
                "qty": int(journal["qty"][k]),
                "ack": None,
                "fills": [],
            }
        elif oid in out and reason == R_FILL:
            out[oid]["fills"].append((int(journal["price"][k]), int(journal["qty"][k])))
        if oid in out and out[oid]["ack"] is None and int(journal["to_state"][k]) == ST_ACCEPTED:
            out[oid]["ack"] = int(journal["ts"][k])
    return [out[k] for k in sorted(out)]


def book_prices(events: np.ndarray) -> tuple[set[int], set[int]]:
    """Every bid and ask price the recording shows (book levels and best quotes)."""
    kinds = np.isin(events["kind"], (KIND_BOOK_SNAPSHOT, KIND_BOOK_DELTA, KIND_QUOTE))
    shown = kinds & (events["size"] > 0)
    bids = set(events["price"][shown & (events["side"] == SIDE_BUY)].tolist())
    asks = set(events["price"][shown & (events["side"] == SIDE_SELL)].tolist())
    return bids, asks


def allowed(order: dict, bids: set[int], asks: set[int]) -> bool:
    """Every fill at or inside the limit, at a price the recorded book offered."""
    for price, _ in order["fills"]:
        if order["side"] == SIDE_BUY_CODE and not (price <= order["limit"] and price in asks):
            return False
        if order["side"] != SIDE_BUY_CODE and not (price >= order["limit"] and price in bids):
            return False
    return True


def pnl_ticks_lots(orders: list[dict]) -> int:
    """Cash from the fills in ticks x lots (sells minus buys): the PnL of a flat run."""
    return sum(
        (-1 if o["side"] == SIDE_BUY_CODE else 1) * p * q for o in orders for p, q in o["fills"]
    )


async def test_live_and_backtest_send_the_same_orders_and_fill_where_the_book_allowed(
    replay: Replay, tmp_path: Path
) -> None:
    async with CheckedVenue(replay, speed=SPEED) as sb:
        session = session_for(sb, tmp_path / "orders.journal", PARAMS)
        await session.start()
        try:
            await done(session, 30.0)
        finally:
            await session.stop()
        events, registry = sb.matcher.engine.events, sb.matcher.registry
    assert session.engine is not None and session.orders is not None
    live_sides = {o.oid: (1 if o.side == "buy" else -1) for o in session.orders.by_oid.values()}
    live = orders_of(session.engine.journal(), live_sides)
    round_trips = [o["ack"] - o["ts"] for o in live if o["ack"] is not None]
    one_way = int(np.median(round_trips) / 2 * SPEED)  # wall ns -> market ns

    config = EngineConfig(
        entry_latency_ns=one_way, report_latency_ns=one_way, cancel_latency_ns=one_way
    )
    backtest = Engine(EventStream(events, registry), touch_trader(), [PARAMS], config)
    backtest.run()
    fills = backtest.fills()
    bt_sides = dict(zip(fills["oid"].tolist(), fills["side"].tolist(), strict=True))
    bt = orders_of(backtest.journal(), bt_sides)

    bids, asks = book_prices(events)
    # The same trades: a filled buy then a filled sell of `qty`, `rounds` times, in both.
    # An IOC that found the book gone when it arrived (it moved during the latency) expired
    # and was sent again: such retries may differ in number between the runs.
    filled_live = [(o["side"], sum(q for _, q in o["fills"])) for o in live if o["fills"]]
    filled_bt = [(o["side"], sum(q for _, q in o["fills"])) for o in bt if o["fills"]]
    assert filled_live == filled_bt == [(1, 100), (-1, 100)] * PARAMS["rounds"]
    assert all(allowed(o, bids, asks) for o in live)
    assert all(allowed(o, bids, asks) for o in bt)
    assert position(session) == 0 and int(backtest.state.pi[:, 0, 0].sum()) == 0
    live_f = [o["fills"] for o in live if o["fills"]]
    bt_f = [o["fills"] for o in bt if o["fills"]]
    same = sum(a == b for a, b in zip(live_f, bt_f, strict=True))
    live_pnl, bt_pnl = pnl_ticks_lots(live), pnl_ticks_lots(bt)
    tick_lot = float(registry[0].tick_size * registry[0].lot_size)
    print(
        f"\nparity: orders live {len(live)} backtest {len(bt)}; {same} of {len(live_f)} "
        "filled orders at identical prices; one-way latency "
        f"{np.median(round_trips) / 2e6:.2f} ms wall = {one_way / 1e6:.1f} ms market; "
        f"cash from fills live {live_pnl * tick_lot:+.6f} vs backtest {bt_pnl * tick_lot:+.6f} "
        "USDT (before fees)"
    )
