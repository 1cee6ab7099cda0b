"""The sandbox venue server itself: its REST answers and its stream, with a bare client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.http import http_get
from adapters.live.sandbox_md import SandboxMarketData
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.ws_venue import WsConfig
from engine.errors import DataError, UsageError
from tests.adapters.live.helpers import eventually


@pytest.fixture(scope="module")
def replay(shared_data: Path):
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=60
    )


async def test_rest_endpoints(replay):
    async with SandboxMarketData(replay, autostart=False) as sb:
        base = sb.rest_url
        t = await http_get(f"{base}/api/v3/time")
        assert t.status == 200 and abs(orjson.loads(t.body)["serverTime"] - time.time() * 1e3) < 5e3
        depth = await http_get(f"{base}/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5})
        body = orjson.loads(depth.body)
        assert depth.status == 200 and len(body["bids"]) == 5 and len(body["asks"]) == 5
        assert body["lastUpdateId"] == replay.books["BTCUSDT"].update_id
        assert float(body["bids"][0][0]) < float(body["asks"][0][0])  # best first, not crossed
        assert int(depth.headers["x-mbx-used-weight-1m"]) >= 5
        info = await http_get(f"{base}/api/v3/exchangeInfo", {"symbol": "BTCUSDT"})
        sym = orjson.loads(info.body)["symbols"][0]
        kinds = [f["filterType"] for f in sym["filters"]]
        assert kinds == ["PRICE_FILTER", "LOT_SIZE", "NOTIONAL"]
        assert sym["filters"][0]["tickSize"] == "0.01000000"
        bad = await http_get(f"{base}/api/v3/depth", {"symbol": "NOPE"})
        assert bad.status == 400 and orjson.loads(bad.body)["code"] == -1121
        zero = await http_get(f"{base}/api/v3/depth", {"symbol": "BTCUSDT", "limit": 0})
        assert zero.status == 400
        assert (await http_get(f"{base}/api/v3/nothing")).status == 404


async def test_streams_in_the_url_need_no_subscribe(replay):
    async with SandboxMarketData(replay) as sb:
        url = f"{sb.ws_url}/stream?streams=btcusdt@trade/btcusdt@depth"
        async with connect(url) as ws:
            got = [orjson.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(10)]
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}).decode())
            while True:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 2))
                if msg.get("id") == 3:
                    break
    assert {m["stream"] for m in got} <= {"btcusdt@trade", "btcusdt@depth"}
    assert msg["result"] == ["btcusdt@trade", "btcusdt@depth"]


async def test_a_silent_connection_is_dropped_by_the_watchdog(replay):
    # No replay: after the snapshot nothing arrives, so the watchdog reconnects.
    async with SandboxMarketData(replay, autostart=False) as sb:
        config = WsConfig(stale_after=0.1, backoff_initial=0.01, seed=1)
        client = BinanceSpotMarketData(
            ["BTCUSDT"], ws_url=sb.ws_url, rest_url=sb.rest_url, config=config
        )
        async with client:
            await eventually(lambda: client.status().reconnects >= 1, what="a reconnection")
        assert sb.ws_connections >= 2


def test_sandbox_guards():
    with pytest.raises(UsageError):
        SandboxMarketData(Replay({}, {}), host="0.0.0.0")
    with pytest.raises(UsageError):
        SandboxMarketData(Replay({}, {}), faults="explode=1")


def test_a_capture_without_snapshot_cannot_be_replayed(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text('1 {"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"1","q":"1"}}\n')
    with pytest.raises(DataError):
        replay_from_capture(path)
