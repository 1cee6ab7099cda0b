"""The pure engine: events, data, book, OMS, venue simulation, risk, portfolio, loop.

Importing it never loads a UI or network library (tested in tests/test_layering.py).

numba's disk cache is keyed on the source file of each jitted function only: a change in a
function it calls (inlined or not) in another file leaves a stale compiled caller behind. So
unless NUMBA_CACHE_DIR is set, the cache goes to a directory named after a hash of the whole
engine's source, and any change to the engine starts a fresh cache.
"""

from __future__ import annotations


def _engine_cache_dir() -> None:
    import hashlib
    import os
    from pathlib import Path

    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import numba

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(numba.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cockpit" / "numba"
    numba.config.CACHE_DIR = str(base / h.hexdigest()[:16])


_engine_cache_dir()
