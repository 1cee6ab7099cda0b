"""StrategyRunner: the lifecycle of a strategy's instances over one stream.

    runner = StrategyRunner(stream, MarketMaker, [{"half_spread": 2}, {"half_spread": 4}])
    runner.start()                 # on_start of every instance
    runner.run(max_events=500_000)
    runner.save("mm.ckpt")         # the whole engine plus every instance's params and state
    runner.stop(1)                 # instance 1: on_stop, its orders canceled, no more calls
    runner.start(1)                # ... and back: on_start again, calls resume
    runner.run()
    runner.stop()                  # every instance: on_stop, final equity sample
    runner.reset()                 # a fresh engine over the same data, instances at defaults
    runner.load("mm.ckpt")         # continue from the checkpoint, byte-identical

Stopping and starting one instance are engine commands (stamped and journaled like a flatten),
so a session with them replays exactly. `reset` reuses the compiled hooks and loop (they are
memoized per strategy layout), so it costs an allocation, not a compile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.runner import Engine
from engine.state import PI_POS, RI_ENABLED, RI_OPEN_ORDERS


@dataclass(frozen=True)
class InstanceStatus:
    """One instance as the runner sees it."""

    instance: int
    running: bool
    faulted: bool
    open_orders: int
    positions: tuple[int, ...]
    """Net lots per instrument."""


class StrategyRunner:
    """Start, stop, reset, save and load the instances of one strategy class."""

    def __init__(
        self,
        stream: EventStream,
        strategy_cls: type,
        instances: list[dict[str, Any]] | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self._args = (stream, strategy_cls, list(instances or []), config)
        self.engine = Engine(stream, strategy_cls, list(instances or []), config)

    @property
    def strategy_cls(self) -> type:
        """The strategy class run."""
        return self.engine.strategy_cls

    @property
    def n_instances(self) -> int:
        """How many instances run."""
        return len(self.engine.rows)

    def start(self, instance: int | None = None) -> None:
        """Start every instance (once), or start one stopped instance again."""
        if instance is None:
            self.engine.start()
        else:
            self.engine.start_instance(instance)

    def run(self, **kw: Any) -> int:
        """Process events (Engine.run arguments); returns the STOP_* reason."""
        return self.engine.run(**kw)

    def stop(self, instance: int | None = None) -> None:
        """Stop one instance (on_stop, orders canceled, no more calls), or finish the run."""
        if instance is None:
            self.engine.finish()
        else:
            self.engine.stop_instance(instance)

    def reset(self) -> Engine:
        """Throw the run away: a fresh engine over the same data, instances at their start."""
        self.engine = Engine(*self._args)
        return self.engine

    def save(self, path: str | Path) -> None:
        """Checkpoint the engine and every instance's params and state."""
        self.engine.checkpoint(path)

    def load(self, path: str | Path) -> None:
        """Continue from a checkpoint taken by a runner over the same data and strategy."""
        self.engine.restore(path)

    def status(self) -> list[InstanceStatus]:
        """Every instance: running, faulted (a hook raised), open orders, positions."""
        st = self.engine.state
        faulted = {f.instance for f in self.engine.faults}
        out = []
        for j in range(self.n_instances):
            out.append(
                InstanceStatus(
                    instance=j,
                    running=bool(st.ri[j, RI_ENABLED]),
                    faulted=j in faulted,
                    open_orders=int(st.ri[j, RI_OPEN_ORDERS]),
                    positions=tuple(int(x) for x in np.asarray(st.pi[j, :, PI_POS])),
                )
            )
        return out
