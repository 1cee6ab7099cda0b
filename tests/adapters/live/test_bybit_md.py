"""Bybit market data client against a scripted Bybit-like server on loopback."""

from __future__ import annotations

import asyncio
import zipfile

import numpy as np
import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from adapters.bybit_history import load_bybit_orderbook
from adapters.live.bybit_md import BybitMarketData
from adapters.live.ws_venue import State, WsConfig
from engine.errors import UsageError
from engine.events import (
    FLAG_LOCAL_TS_MISSING,
    FLAG_RESYNC,
    KIND_BOOK_CLEAR,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_SELL,
)
from engine.instruments import Instrument
from tests.adapters.live.helpers import RefBook, eventually

SYMBOL = "BTCUSDT"
TOPIC = f"orderbook.50.{SYMBOL}"
INST = Instrument(SYMBOL, "bybit-linear", "0.5", "0.001", kind="perpetual")
T0 = 1_704_067_200_000


def book(kind: str, u: int, bids, asks, ts: int) -> dict:
    data = {"s": SYMBOL, "b": bids, "a": asks, "u": u, "seq": 7000 + ts - T0}
    return {"topic": TOPIC, "type": kind, "ts": ts, "data": data, "cts": ts - 2}


# What the server sends after the first subscription: a snapshot, deltas, a trade, a
# service restart (u back to 1), a repeated delta, then a gap (u=4 after u=2).
FIRST = [
    book("snapshot", 100, [["100.0", "1"], ["99.5", "2"]], [["100.5", "1"], ["101.0", "3"]], T0),
    book("delta", 101, [["100.0", "5"]], [], T0 + 1),
    {
        "topic": f"publicTrade.{SYMBOL}",
        "type": "snapshot",
        "ts": T0 + 2,
        "data": [
            {
                "T": T0 + 2,
                "s": SYMBOL,
                "S": "Buy",
                "v": "0.010",
                "p": "100.5",
                "L": "PlusTick",
                "i": "a1",
                "BT": False,
            },
            {
                "T": T0 + 2,
                "s": SYMBOL,
                "S": "Sell",
                "v": "0.002",
                "p": "100.0",
                "L": "MinusTick",
                "i": "a2",
                "BT": False,
            },
        ],
    },
    book("delta", 102, [], [["100.5", "0"], ["100.0", "0.5"]], T0 + 3),
    book("snapshot", 1, [["99.0", "4"]], [["102.0", "4"]], T0 + 4),
    book("delta", 2, [["99.5", "1"]], [], T0 + 5),
    book("delta", 2, [["99.5", "7"]], [], T0 + 6),
    book("delta", 4, [["98.0", "1"]], [], T0 + 7),
]
# After the client resubscribes the book's topic: a fresh snapshot and a delta.
AGAIN = [
    book("snapshot", 200, [["90.0", "4"]], [["110.0", "4"]], T0 + 10),
    book("delta", 201, [["90.5", "1"]], [["110.0", "0"], ["111.0", "2"]], T0 + 11),
]


class FakeBybit:
    """Answers subscribe/unsubscribe/ping like Bybit's linear public stream."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.subscriptions = 0
        self.pings = 0

    async def handler(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = orjson.loads(frame)
            self.received.append(msg)
            op = msg.get("op")
            if op == "ping":
                self.pings += 1
                await ws.send(orjson.dumps({"op": "pong", "args": ["1"], "conn_id": "c"}).decode())
                continue
            ack = {
                "success": True,
                "ret_msg": "",
                "conn_id": "c",
                "req_id": msg.get("req_id"),
                "op": op,
            }
            await ws.send(orjson.dumps(ack).decode())
            if op == "subscribe" and TOPIC in msg["args"]:
                self.subscriptions += 1
                for m in FIRST if self.subscriptions == 1 else AGAIN:
                    await ws.send(orjson.dumps(m).decode())


@pytest.fixture
async def fake_bybit():
    fake = FakeBybit()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


async def test_snapshot_and_deltas_restart_and_gap_resubscribe(fake_bybit):
    fake, url = fake_bybit
    chunks: list[np.ndarray] = []
    ref = RefBook()

    def sink(rows: np.ndarray) -> None:
        chunks.append(rows)
        ref.apply(rows)

    client = BybitMarketData(
        [SYMBOL],
        instruments={SYMBOL: INST},
        ws_url=url,
        ping_interval=0.05,
        on_events=sink,
        config=WsConfig(seed=1),
    )
    async with client:
        await eventually(lambda: client.sequencer(SYMBOL).book_id == 201, what="u=201")
        await eventually(lambda: fake.pings >= 1 and client.pongs >= 1, what="a ping")
        st = client.status()
    assert client.venue == "bybit-linear" and st.venue == "bybit-linear"
    assert ref.bids == {180: 4000, 181: 1000} and ref.asks == {222: 2000}
    assert st.gaps == 1 and st.resyncs == 1 and st.state is State.SUBSCRIBED
    assert client.service_restarts == 1 and client.sequencer(SYMBOL).repeats == 1
    assert st.bad_frames == 0 and st.unknown_messages == 0
    ops = [(m["op"], m.get("args")) for m in fake.received if m["op"] != "ping"]
    assert ops == [
        ("subscribe", [TOPIC, f"publicTrade.{SYMBOL}"]),
        ("unsubscribe", [TOPIC]),
        ("subscribe", [TOPIC]),
    ]
    assert all(isinstance(m.get("req_id"), str) for m in fake.received if m["op"] != "ping")
    rows = np.concatenate(chunks)
    trades = rows[rows["kind"] == KIND_TRADE]
    assert trades["side"].tolist() == [SIDE_BUY, SIDE_SELL]
    assert trades["price"].tolist() == [201, 200] and trades["size"].tolist() == [10, 2]
    assert trades["ts_exch"].tolist() == [(T0 + 2) * 1_000_000] * 2
    resync = rows[(rows["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == 1 and resync["kind"][0] == KIND_BOOK_CLEAR


async def test_live_rows_equal_the_history_files(fake_bybit, tmp_path):
    """The same messages, received live or read from a history zip, give the same book rows."""
    fake, url = fake_bybit
    chunks: list[np.ndarray] = []
    client = BybitMarketData(
        [SYMBOL],
        instruments={SYMBOL: INST},
        ws_url=url,
        trades=False,
        on_events=chunks.append,
        config=WsConfig(seed=1),
    )
    async with client:
        await eventually(lambda: client.sequencer(SYMBOL).book_id == 201, what="u=201")
    live = np.concatenate(chunks)
    path = tmp_path / "2024-01-01_BTCUSDT_ob50.data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        msgs = [m for m in FIRST + AGAIN if m["topic"] == TOPIC]
        zf.writestr("ob.data", b"".join(orjson.dumps(m) + b"\n" for m in msgs))
    history = load_bybit_orderbook(path, instrument=INST).events
    cols = ["ts_exch", "kind", "side", "price", "size"]
    assert len(live) == len(history)
    for col in cols:
        assert np.array_equal(live[col], history[col]), col
    assert np.array_equal(live["flags"], history["flags"] & ~np.uint16(FLAG_LOCAL_TS_MISSING))
    assert client.unknown_messages == {f"publicTrade.{SYMBOL}": 1}  # not subscribed


def test_configuration_is_checked():
    with pytest.raises(UsageError):
        BybitMarketData([SYMBOL], instruments={SYMBOL: INST}, category="inverse")
    with pytest.raises(UsageError):
        BybitMarketData([SYMBOL], instruments={SYMBOL: INST}, category="spot", depth=500)
    with pytest.raises(UsageError):
        BybitMarketData(["ETHUSDT"], instruments={SYMBOL: INST})
    many = [f"S{i}USDT" for i in range(8)]
    client = BybitMarketData(
        many, instruments={s: Instrument(s, "bybit-linear", "0.1", "1") for s in many}
    )
    reqs = client.subscribe_requests()
    assert [len(r["args"]) for r in reqs] == [10, 6]  # 16 topics, 10 a request


async def test_bad_frames_are_counted():
    client = BybitMarketData([SYMBOL], instruments={SYMBOL: INST})
    for bad in (
        {"topic": TOPIC, "type": "odd", "ts": 1, "data": {"s": SYMBOL, "b": [], "a": [], "u": 1}},
        {"topic": f"publicTrade.{SYMBOL}", "data": [{"S": "Up", "p": "1", "v": "1", "T": 1}]},
        [1, 2],
    ):
        client._dispatch(bad, 1, _Conn())  # noqa: SLF001 - the frame path without a socket
    client._dispatch({"topic": "tickers.BTCUSDT", "data": {}}, 1, _Conn())
    client._dispatch(
        {
            "topic": TOPIC,
            "type": "snapshot",
            "ts": 1,
            "data": {"s": SYMBOL, "b": [], "a": [], "u": 5, "seq": 1, "new": 1},
        },
        1,
        _Conn(),
    )
    st = client.status()
    assert st.bad_frames == 3 and st.unknown_messages == 1 and st.unknown_fields == 1
    await asyncio.sleep(0)


class _Conn:
    subscribed = True
