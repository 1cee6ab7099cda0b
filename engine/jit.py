"""Compilation options shared by every engine kernel.

`_nrt=False` switches off numba's reference counting inside a kernel. Kernels take named
tuples of many arrays (the engine state); with reference counting on, every call pays atomic
increments and decrements for each array, which measured 300 ns per book update against 23 ns
without (numba issues #2345, #2350). It is safe only because kernels allocate nothing, which
the house rules require anyway. `_nrt` is a private numba option: if a numba release drops
it, compilation fails loudly at import, never silently.
"""

from __future__ import annotations

from typing import Final

from numba import njit

KERNEL_OPTIONS: Final = {"cache": True, "nogil": True, "_nrt": False}

kernel = njit(**KERNEL_OPTIONS)
"""Decorator for engine kernels: cached, GIL-free, no reference counting, no allocation.

"""

hot = njit(**KERNEL_OPTIONS, inline="always")
"""For the few kernels on the per-event path: inlined at numba IR level into their caller.

The state is a named tuple of about 30 arrays passed by value; a call LLVM does not inline
copies every descriptor (about 30 ns). Inlining everything instead made the loop's IR explode
(minutes to compile, slower code), so only the per-event path is inlined.
"""

entry = njit(**KERNEL_OPTIONS)
"""Decorator for kernels called from Python (the loop, commands): compiled on their own."""
