"""DirectClientConnection: messages go to the sink from the parser, in order, and anything
websockets must assemble (fragments) keeps its order through recv."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from adapters.live.ws_direct import DirectClientConnection, DirectServerConnection

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_messages_reach_the_sink_in_order_not_through_recv() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the client's "go"
        for k in range(3):
            await ws.send(f"text {k}")
        await ws.send(b"\x00\x01")
        await ws.wait_closed()

    got: list[Any] = []
    async with server(handler) as url:
        async with connect(url, create_connection=DirectClientConnection) as ws:
            assert isinstance(ws, DirectClientConnection)
            assert ws.deliver_to(got.append) and ws.direct
            await ws.send("go")
            for _ in range(100):
                if len(got) == 4:
                    break
                await asyncio.sleep(0.01)
            assert not ws.recv_messages.frames.queue  # nothing went the queued way
    assert got == ["text 0", "text 1", "text 2", b"\x00\x01"]


async def test_messages_queued_before_the_sink_keep_everything_on_recv() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("first")
        await ws.recv()
        await ws.send("second")
        await ws.wait_closed()

    got: list[Any] = []
    async with server(handler) as url:
        async with connect(url, create_connection=DirectClientConnection) as ws:
            await asyncio.sleep(0.05)  # "first" is queued by now
            assert not ws.deliver_to(got.append) and not ws.direct
            await ws.send("go")
            assert await asyncio.wait_for(ws.recv(), 2) == "first"
            assert await asyncio.wait_for(ws.recv(), 2) == "second"
    assert got == []


async def test_a_fragmented_message_and_all_after_it_come_through_recv_in_order() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the client's "go"
        await ws.send("one")
        await ws.send(["frag", "mented"])  # one message in two frames
        await ws.send("three")
        await ws.wait_closed()

    got: list[Any] = []
    async with server(handler) as url:
        async with connect(url, create_connection=DirectClientConnection) as ws:
            assert ws.deliver_to(got.append)
            await ws.send("go")
            assert await asyncio.wait_for(ws.recv(), 2) == "fragmented"
            assert await asyncio.wait_for(ws.recv(), 2) == "three"
            assert not ws.direct
    assert got == ["one"]


async def test_a_sink_that_raises_is_logged_and_the_connection_goes_on(caplog) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the client's "go"
        await ws.send("boom")
        await ws.send("fine")
        await ws.wait_closed()

    got: list[Any] = []

    def sink(data: Any) -> None:
        if data == "boom":
            raise ValueError("bad")
        got.append(data)

    async with server(handler) as url:
        async with connect(url, create_connection=DirectClientConnection) as ws:
            assert ws.deliver_to(sink)
            await ws.send("go")
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            pong = await ws.ping()
            await asyncio.wait_for(pong, 2)  # pings still answered: websockets' own
    assert got == ["fine"]
    assert "the message sink raised" in caplog.text


async def test_the_server_side_delivers_the_same_way() -> None:
    got: list[Any] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, DirectServerConnection)
        assert ws.deliver_to(got.append)
        await ws.send("ready")
        async for _ in ws:  # nothing comes this way; ends when the client closes
            raise AssertionError("a message went through recv")
        done.set()

    async with serve(handler, "127.0.0.1", 0, create_connection=DirectServerConnection) as srv:
        url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        async with connect(url) as ws:
            await ws.send("a")
            await ws.send("b")
            assert await ws.recv() == "ready"
            await ws.send("c")
            await asyncio.sleep(0.05)
        await asyncio.wait_for(done.wait(), 2)
    assert got == ["a", "b", "c"]
