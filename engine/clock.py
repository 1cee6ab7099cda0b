"""A cycle counter readable inside jitted code, calibrated to nanoseconds.

Python's clocks cannot be called from nopython code. LLVM's `readcyclecounter` intrinsic
(RDTSC on x86, CNTVCT on ARM) costs about 9 ns a read here; `calibrate()` measures both the
counter's rate against `time.perf_counter_ns` and the cost of one read, so benchmarks can
report the figure and subtract nothing silently.
"""

from __future__ import annotations

import time

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (monotone on one core; invariant TSC on modern x86)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=fnty)
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True, nogil=True)
def _read_many(n: int) -> int:
    t0 = cycles()
    acc = 0
    for _ in range(n):
        acc += cycles() & 1
    return cycles() - t0 - (acc & 0)


def calibrate(seconds: float = 0.05) -> tuple[float, float]:
    """(counter ticks per ns, ns per counter read), measured now."""
    _read_many(10)
    c0, t0 = _read_many(0), time.perf_counter_ns()
    start = cycles_py()
    time.sleep(seconds)
    ticks = cycles_py() - start
    elapsed = time.perf_counter_ns() - t0
    per_ns = ticks / max(1, elapsed) if ticks > 0 else 1.0
    n = 1_000_000
    reads = _read_many(n) - c0
    return per_ns, reads / n / per_ns


@njit(cache=True, nogil=True)
def _cycles_now() -> int:
    return cycles()


def cycles_py() -> int:
    """The cycle counter read from Python (through a jitted call)."""
    return int(_cycles_now())
