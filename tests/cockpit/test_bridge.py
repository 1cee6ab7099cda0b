"""The engine bridge without a UI: pacing, seeks, commands, snapshots, failures, threads."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cockpit.bridge import EngineBridge
from cockpit.replay_pacing import SPEEDS, next_speed
from cockpit.snapshot import OV_OID, OV_SIDE, OV_STATUS
from engine.codes import BREAK_FILL
from engine.commands import CMD_CANCEL_ALL, CMD_MANUAL_LIMIT, Command
from engine.events import SIDE_BUY
from engine.runner import Engine
from tests.cockpit.quoting import Quoter


def test_speed_ladder() -> None:
    assert next_speed(1.0, +1) == 2.0
    assert next_speed(1.0, -1) == 0.5
    assert next_speed(SPEEDS[-1], +1) is None
    assert next_speed(None, +1) is None
    assert next_speed(None, -1) == SPEEDS[-1]
    assert next_speed(SPEEDS[0], -1) == SPEEDS[0]
    assert next_speed(3.0, +1) == 5.0  # an off-ladder speed joins the ladder


def test_paced_replay_follows_event_time(make_bridge) -> None:
    b = make_bridge(steps=10)
    b.set_speed(10.0)
    b.play()
    t0 = b.engine.now
    b.pump(0.1)  # 0.1 wall seconds at x10: one second of event time
    assert b.engine.now == t0 + 1_000_000_000
    assert b.snapshot.status.mode == "playing"


def test_the_clock_starts_at_the_first_event(make_bridge, market) -> None:
    b = make_bridge()
    b.play()
    b.pump(0.01)
    first = int(market.events["ts_local"][0])
    assert first <= b.engine.now <= first + 10_000_000


def test_step_until_fill_and_snapshot_contents(make_bridge) -> None:
    b = make_bridge()
    b.step_until(BREAK_FILL)
    s = b.snapshot
    assert s.status.last_stop == "fill"
    assert s.counters["fills"] == 1
    assert len(s.book.bid_px) and len(s.book.ask_px)
    assert s.book.best_bid < s.book.best_ask
    assert s.portfolio.rows and s.portfolio.rows[0].position != 0
    assert len(s.orders) >= 2
    assert not s.orders.flags.writeable  # published arrays are read-only
    # Sides of finished orders are known (from the freed slot or the fills).
    assert set(s.orders[:, OV_SIDE].tolist()) <= {1, -1}


def test_jump_forward_only(make_bridge) -> None:
    b = make_bridge(steps=10)
    now = b.engine.now
    b.jump_to(now - 1)
    assert b.engine.now == now
    assert "only runs forward" in b.snapshot.messages[-1].text
    b.jump_to(now + 5_000_000_000)
    assert b.engine.now == now + 5_000_000_000
    assert b.snapshot.status.mode == "paused"


def test_commands_are_stamped_and_reported(make_bridge) -> None:
    b = make_bridge(steps=300)
    inst = 0
    px = b.snapshot.book.best_bid - 3
    b.send(Command(CMD_MANUAL_LIMIT, inst, SIDE_BUY, px, 7))
    cmd = b.engine.commands[-1]
    assert cmd.after_events == b.engine.events_processed and cmd.ts == b.engine.now
    assert b.snapshot.messages[-1].text.startswith("manual order sent")
    own = b.snapshot.book
    assert px in own.own_px.tolist()
    b.send(Command(CMD_CANCEL_ALL))
    assert b.snapshot.messages[-1].text.startswith("cancel_all:")


def test_finished_orders_keep_their_last_state(make_bridge) -> None:
    b = make_bridge(steps=3000)
    rows = b.snapshot.orders
    assert len(np.unique(rows[:, OV_OID])) == len(rows)
    assert (rows[:, OV_STATUS] >= 0).all()


def test_end_of_data(make_bridge, market) -> None:
    b = make_bridge()
    b.step(10 * len(market.events))
    assert b.snapshot.status.mode == "ended"
    b.step(1)
    assert "end of the data" in b.snapshot.messages[-1].text


def test_failure_is_captured(make_bridge, monkeypatch) -> None:
    b = make_bridge(steps=5)

    def broken(*a, **kw):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(b.engine, "run", broken)
    b.step(1)
    f = b.snapshot.failure
    assert f is not None and f.message == "kaboom" and "RuntimeError" in f.details
    assert b.snapshot.status.mode == "failed"
    b.step(1)  # refused quietly: the engine runs no more
    assert b.snapshot.status.mode == "failed"


@pytest.mark.slow
def test_thread_runs_and_stops(market) -> None:
    b = EngineBridge(Engine(market, Quoter, [{}]), speed=None)
    thread = b.start()
    try:
        b.play()
        deadline = time.monotonic() + 30
        while b.snapshot.status.mode != "ended" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.snapshot.status.mode == "ended"
        assert b.snapshot.status.cursor == len(market.events)
    finally:
        b.stop()
    assert not thread.is_alive()


def test_load_params_writes_every_strategy_row(market, clock) -> None:
    b = EngineBridge(Engine(market, Quoter, [{}, {"size": 7}]), threaded=False, clock=clock)
    b.step(100)
    b.load_params({"size": "80"})
    assert b.engine.rows["size"].tolist() == [80, 80]
    assert b.snapshot.messages[-1].text == (
        "parameters loaded into all 2 strategy instances: size=80"
    )
    b.step(100)  # the engine runs on with the new values
    assert b.snapshot.failure is None


def test_bad_params_are_a_message_not_an_engine_failure(make_bridge) -> None:
    b = make_bridge(steps=10)
    b.load_params({"size": 90, "nope": 1})
    msg = b.snapshot.messages[-1]
    assert msg.severity == "error"
    assert msg.text.startswith("parameters not loaded: Quoter: unknown parameter 'nope'")
    assert b.engine.rows["size"].tolist() == [50]  # nothing written
    assert b.snapshot.failure is None and b.snapshot.status.mode == "paused"


@pytest.mark.slow
def test_params_load_between_chunks_of_a_running_replay(market) -> None:
    b = EngineBridge(Engine(market, Quoter, [{}]), speed=1.0)
    b.start()
    try:
        b.play()
        b.load_params({"size": 61})
        deadline = time.monotonic() + 30
        while not b.snapshot.messages and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.snapshot.messages[-1].text == "parameters loaded into the strategy: size=61"
        assert b.engine.rows["size"][0] == 61
        assert b.snapshot.status.mode == "playing"
    finally:
        b.stop()
