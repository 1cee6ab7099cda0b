"""The engine benchmark: the published seed scenario and more, through the real engine path.

Seed scenario ("a synthetic order book update scenario: 100,000 events, 10% order placement,
90% order cancellation"): 100,000 single-row book updates of one instrument; on each, the
strategy (engine/bench_strategies.py PlaceCancel) decides: 1 in 10 places a post-only order
behind the touch, 9 in 10 cancel the oldest of its resting orders (90,000 are rested before
the clock starts so every cancel has an order). Each placement goes through pre-trade risk,
an OMS transition, the scheduler, the venue (acknowledgement) and back; each cancel through
the OMS, the venue and back. Latencies are zero so the venue's answers follow at once.

What "one event" is: one iteration of the jitted loop (engine/loop.py run_chunk), i.e. either
a market-data event with everything the strategy does in reaction (risk checks, OMS
transitions, journal rows, scheduling), or a scheduled engine event (an order or cancel
reaching the venue, or a venue report reaching the OMS with the strategy's callback). Its
latency is read inside the loop with the CPU cycle counter (engine/clock.py) before and after
the iteration; the cost of reading the counter is measured and reported, and included in the
figures (not subtracted). The per-input figure divides the loop's wall time by the 100,000
input events, so it includes every engine event they caused.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from engine.clock import calibrate
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.events import EVENT_DTYPE, FLAG_LAST, KIND_BOOK_DELTA
from engine.instruments import Instrument, InstrumentRegistry
from engine.runner import Engine


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def seed_stream(n_events: int = 100_000, seed: int = 1) -> EventStream:
    """n single-row book updates (each its own message) around 100.00, seeded."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n_events, dtype=EVENT_DTYPE)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1_000, 100_000, n_events))
    mid = 10_000 + np.cumsum(rng.integers(-1, 2, n_events)) // 10
    side = np.where(rng.random(n_events) < 0.5, 1, -1)
    offset = rng.integers(1, 20, n_events)
    ev["ts_exch"] = ts
    ev["ts_local"] = ts + 200_000
    ev["price"] = np.where(side > 0, mid - offset, mid + offset)
    ev["size"] = rng.integers(0, 50, n_events)
    ev["side"] = side
    ev["kind"] = KIND_BOOK_DELTA
    ev["flags"] = FLAG_LAST
    inst = Instrument("SEED", "synthetic", Decimal("0.01"), Decimal("0.001"))
    return EventStream(ev, InstrumentRegistry([inst]), {"source": "bench:seed", "seed": seed})


def _percentiles(ns: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(ns)),
        "p90": float(np.percentile(ns, 90)),
        "p99": float(np.percentile(ns, 99)),
        "p99_9": float(np.percentile(ns, 99.9)),
        "max": float(ns.max()),
    }


@dataclass
class SeedResult:
    """One run of the seed scenario."""

    loop_events: int
    input_events: int
    wall_s: float
    latency_ns: dict[str, float]
    journal_hash: str
    orders: int
    cancels: int
    journal_rows: int
    state_bytes: int
    counters: dict[str, int] = field(default_factory=dict)


def run_seed(
    n_events: int = 100_000, seed: int = 1, ticks_per_ns: float | None = None
) -> SeedResult:
    """One timed run of the seed scenario."""
    from engine.bench_strategies import PlaceCancel

    stream = seed_stream(n_events, seed)
    cfg = EngineConfig(
        entry_latency_ns=0,
        report_latency_ns=0,
        max_orders=1 << 17,
        heap_capacity=1 << 18,
        equity_interval_ns=0,
    )
    eng = Engine(stream, PlaceCancel, [{"preload": int(n_events * 0.9)}], cfg)
    eng.start()
    eng.run(stop_ts=int(stream.events["ts_local"][0]) - 1, break_mask=16)  # preload settles
    before = eng.events_processed
    eng.latency_out = np.zeros(8 * n_events, np.int64)
    eng.drain()
    t0 = time.perf_counter()
    eng.run()
    wall = time.perf_counter() - t0
    done = eng.events_processed
    # latency_out is indexed by events processed since the engine started.
    cycles = eng.latency_out[before:done]
    if ticks_per_ns is None:
        ticks_per_ns, _ = calibrate()
    ns = cycles / ticks_per_ns
    eng.finish()
    state_bytes = sum(a.nbytes for a in _arrays(eng.state))
    return SeedResult(
        loop_events=done - before,
        input_events=n_events,
        wall_s=wall,
        latency_ns=_percentiles(ns),
        journal_hash=eng.journal_hash(),
        orders=eng.counters()["orders_submitted"],
        cancels=eng.counters()["cancels"],
        journal_rows=len(eng.journal()["ts"]),
        state_bytes=state_bytes,
        counters=eng.counters(),
    )


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    else:
        for name in obj._fields:
            yield from _arrays(getattr(obj, name))


def seed_report(repeats: int = 5, n_events: int = 100_000) -> dict[str, Any]:
    """The seed scenario `repeats` times: medians of each statistic, determinism, clock cost."""
    ticks_per_ns, read_ns = calibrate()
    runs = [run_seed(n_events, ticks_per_ns=ticks_per_ns) for _ in range(repeats)]
    med = {k: float(np.median([r.latency_ns[k] for r in runs])) for k in runs[0].latency_ns}
    hashes = {r.journal_hash for r in runs}
    r0 = runs[0]
    per_input = float(np.median([r.wall_s / r.input_events * 1e9 for r in runs]))
    return {
        "scenario": "seed",
        "input_events": n_events,
        "loop_events_per_run": r0.loop_events,
        "orders_placed": r0.orders,
        "cancels": r0.cancels,
        "latency_ns_per_loop_event": med,
        "ns_per_input_event": per_input,
        "events_per_s": float(r0.loop_events / np.median([r.wall_s for r in runs])),
        "clock_read_ns": read_ns,
        "bytes_per_event": {
            "input_event": EVENT_DTYPE.itemsize,
            "journal_retained": r0.journal_rows * 80 / n_events,
            "allocated_in_loop": 0,
        },
        "engine_state_mb": r0.state_bytes / 2**20,
        "deterministic": len(hashes) == 1,
        "journal_hash": r0.journal_hash[:16],
        "repeats": repeats,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def throughput(stream: EventStream, strategy_cls=None, instances=None, repeats: int = 3) -> dict:
    """Events/s of a full replay (median of `repeats`), and the journal hash."""
    walls, hashes, counters = [], set(), {}
    cfg = EngineConfig(entry_latency_ns=1_000_000, report_latency_ns=1_000_000)
    for _ in range(repeats):
        eng = Engine(stream, strategy_cls, instances, cfg)
        eng.start()
        eng.run(max_events=1)
        t0 = time.perf_counter()
        eng.run()
        walls.append(time.perf_counter() - t0)
        eng.finish()
        hashes.add(eng.journal_hash())
        counters = eng.counters()
    n = len(stream.events)
    w = float(np.median(walls))
    return {
        "events": n,
        "wall_s": w,
        "events_per_s": n / w,
        "deterministic": len(hashes) == 1,
        "orders": counters.get("orders_submitted", 0),
        "fills": counters.get("fills", 0),
        "strategy_calls": counters.get("strategy_calls", 0),
    }


def digest(obj: Any) -> str:
    """Short stable hash of a report (for tests of the report's form)."""
    return hashlib.sha256(repr(sorted(obj.items())).encode()).hexdigest()[:12]
