"""Fixtures for the cockpit's tests: a deterministic engine, app and clock.

Determinism (house style rule 11): the bridge runs synchronously (every key's effect is
applied before Pilot's press returns, and Pilot waits only for the event loop), the wall
clock is a fake that never moves, animations are off and the Input cursor does not blink.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.reactive import reactive
from textual.widgets import Input

from cockpit.app import CockpitApp
from cockpit.bridge import EngineBridge
from engine.data.stream import EventStream
from engine.runner import Engine
from engine.synthetic import SyntheticConfig, default_market, generate
from tests.cockpit.quoting import Quoter

EVENTS = 20_000


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _no_nondeterminism(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor, no animations."""
    blink = reactive(False, init=False)
    blink.__set_name__(Input, "cursor_blink")
    monkeypatch.setattr(Input, "cursor_blink", blink)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture(scope="session")
def market() -> EventStream:
    """The seeded synthetic market, small enough for quick tests."""
    return default_market(n_events=EVENTS)


@pytest.fixture(scope="session")
def market2() -> EventStream:
    """Two instruments (for switching instruments)."""
    return generate(SyntheticConfig(n_events=EVENTS, n_instruments=2))


@pytest.fixture
def clock() -> FakeClock:
    """The fake wall clock of the bridge and the status bar."""
    return FakeClock()


@pytest.fixture
def make_bridge(market: EventStream, clock: FakeClock) -> Callable[..., EngineBridge]:
    """A synchronous bridge over a fresh engine running Quoter, stepped `steps` events."""

    def make(steps: int = 0, stream: EventStream | None = None, **kw) -> EngineBridge:
        engine = Engine(stream or market, Quoter, [{}])
        bridge = EngineBridge(engine, threaded=False, clock=clock, **kw)
        if steps:
            bridge.step(steps)
        return bridge

    return make


@pytest.fixture
def make_app(make_bridge) -> Callable[..., CockpitApp]:
    """A CockpitApp over a synchronous bridge."""

    def make(steps: int = 0, theme: str = "cockpit-dark", **kw) -> CockpitApp:
        bridge = kw.pop("bridge", None) or make_bridge(steps, stream=kw.pop("stream", None))
        app = CockpitApp(bridge, theme=theme, **kw)
        app.animation_level = "none"
        return app

    return make
