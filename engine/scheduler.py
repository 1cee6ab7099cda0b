"""The engine's own scheduled events: a binary min-heap on (time, sequence) in one table.

The sequence number is a global counter, so two events scheduled for the same nanosecond
come out in the order they were scheduled: a fixed tie-break, part of determinism.
"""

from __future__ import annotations

from engine.jit import hot
from engine.state import (
    CK_SEQ,
    H_AUX,
    H_AUX2,
    H_AUX3,
    H_KIND,
    H_N,
    H_REF,
    H_SEQ,
    H_TS,
    N_HEAP,
)
from engine.stats import C_HEAP_OVERFLOW

NEVER = 9223372036854775807


@hot
def _less(h, a: int, b: int) -> bool:
    if h[a, H_TS] != h[b, H_TS]:
        return h[a, H_TS] < h[b, H_TS]
    return h[a, H_SEQ] < h[b, H_SEQ]


@hot
def _swap(h, a: int, b: int) -> None:
    for c in range(H_N):
        t = h[a, c]
        h[a, c] = h[b, c]
        h[b, c] = t


@hot
def schedule(st, ts: int, kind: int, ref: int, aux: int, aux2: int, aux3: int) -> bool:
    """Push an event; False (and a counter the runner turns into an error) if full."""
    h = st.hp
    n = st.ctl[N_HEAP]
    if n >= h.shape[0]:
        st.ctl[C_HEAP_OVERFLOW] += 1
        return False
    h[n, H_TS] = ts
    h[n, H_SEQ] = st.ctl[CK_SEQ]
    st.ctl[CK_SEQ] += 1
    h[n, H_KIND] = kind
    h[n, H_REF] = ref
    h[n, H_AUX] = aux
    h[n, H_AUX2] = aux2
    h[n, H_AUX3] = aux3
    st.ctl[N_HEAP] = n + 1
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if _less(h, i, parent):
            _swap(h, i, parent)
            i = parent
        else:
            break
    return True


@hot
def next_time(st) -> int:
    """Time of the earliest scheduled event (NEVER when none)."""
    if st.ctl[N_HEAP] == 0:
        return NEVER
    return st.hp[0, H_TS]


@hot
def pop(st):
    """Remove the earliest event: (ts, kind, ref, aux, aux2, aux3). Heap must be non-empty."""
    h = st.hp
    ts, kind, ref = h[0, H_TS], h[0, H_KIND], h[0, H_REF]
    aux, aux2, aux3 = h[0, H_AUX], h[0, H_AUX2], h[0, H_AUX3]
    n = st.ctl[N_HEAP] - 1
    st.ctl[N_HEAP] = n
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
    # Keep freed entries zero so two equal states are byte-identical (checkpoint tests).
    for c in range(H_N):
        h[n, c] = 0
    return ts, kind, ref, aux, aux2, aux3
