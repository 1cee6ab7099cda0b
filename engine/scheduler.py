"""The engine's own scheduled events: a binary min-heap on (time, sequence) in arrays.

The sequence number is a global counter, so two events scheduled for the same nanosecond
come out in the order they were scheduled: a fixed tie-break, part of determinism.
"""

from __future__ import annotations

from engine.jit import kernel
from engine.state import CK_SEQ
from engine.stats import C_HEAP_OVERFLOW


@kernel
def _less(h, a: int, b: int) -> bool:
    if h.ts[a] != h.ts[b]:
        return h.ts[a] < h.ts[b]
    return h.seq[a] < h.seq[b]


@kernel
def _swap(h, a: int, b: int) -> None:
    h.ts[a], h.ts[b] = h.ts[b], h.ts[a]
    h.seq[a], h.seq[b] = h.seq[b], h.seq[a]
    h.kind[a], h.kind[b] = h.kind[b], h.kind[a]
    h.ref[a], h.ref[b] = h.ref[b], h.ref[a]
    h.aux[a], h.aux[b] = h.aux[b], h.aux[a]
    h.aux2[a], h.aux2[b] = h.aux2[b], h.aux2[a]
    h.aux3[a], h.aux3[b] = h.aux3[b], h.aux3[a]


@kernel
def schedule(st, ts: int, kind: int, ref: int, aux: int, aux2: int, aux3: int) -> bool:
    """Push an event; False (and a counter) if the heap is full."""
    h = st.heap
    n = h.n[0]
    if n >= h.ts.shape[0]:
        st.counters[C_HEAP_OVERFLOW] += 1
        return False
    h.ts[n] = ts
    h.seq[n] = st.clock[CK_SEQ]
    st.clock[CK_SEQ] += 1
    h.kind[n] = kind
    h.ref[n] = ref
    h.aux[n] = aux
    h.aux2[n] = aux2
    h.aux3[n] = aux3
    h.n[0] = n + 1
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if _less(h, i, parent):
            _swap(h, i, parent)
            i = parent
        else:
            break
    return True


@kernel
def next_time(st) -> int:
    """Time of the earliest scheduled event (int64 max when none)."""
    if st.heap.n[0] == 0:
        return 9223372036854775807
    return st.heap.ts[0]


@kernel
def pop(st):
    """Remove the earliest event: (ts, kind, ref, aux, aux2, aux3). Heap must be non-empty."""
    h = st.heap
    ts, kind, ref = h.ts[0], h.kind[0], h.ref[0]
    aux, aux2, aux3 = h.aux[0], h.aux2[0], h.aux3[0]
    n = h.n[0] - 1
    h.n[0] = n
    if n > 0:
        _swap(h, 0, n)
        i = 0
        while True:
            left = 2 * i + 1
            if left >= n:
                break
            best = left
            right = left + 1
            if right < n and _less(h, right, left):
                best = right
            if _less(h, best, i):
                _swap(h, best, i)
                i = best
            else:
                break
    # Keep freed slots zero so two equal states are byte-identical (checkpoint tests).
    h.ts[n] = 0
    h.seq[n] = 0
    h.kind[n] = 0
    h.ref[n] = 0
    h.aux[n] = 0
    h.aux2[n] = 0
    h.aux3[n] = 0
    return ts, kind, ref, aux, aux2, aux3
