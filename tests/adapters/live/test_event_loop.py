"""The live path's event loop: uvloop where installed, asyncio's own on request."""

from __future__ import annotations

import asyncio

import pytest

from adapters.live import event_loop


def test_uvloop_by_default_where_installed(monkeypatch) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")
    monkeypatch.delenv("COCKPIT_EVENT_LOOP", raising=False)
    assert event_loop.loop_name() == "uvloop"

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(which()).startswith("uvloop")


def test_asyncio_on_request(monkeypatch) -> None:
    monkeypatch.setenv("COCKPIT_EVENT_LOOP", "asyncio")
    assert event_loop.loop_name() == "asyncio"

    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert event_loop.run(which()).__module__.startswith("asyncio")
