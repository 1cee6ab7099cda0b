"""Strategies: plain Python classes compiled into the jitted loop.

A user writes::

    class MarketMaker(Strategy):
        params = {"instrument": 0, "half_spread": 2, "size": 1, "skew": 0.5}
        state = {"bid": -1, "ask": -1}

        def on_data(self, ctx, ev):
            ...  # numba-compatible Python; self.half_spread reads, self.bid = oid writes

`params` and `state` declare fields with defaults (int -> int64, float -> float64, bool ->
bool; a 1-D numpy array -> a fixed-size array field, e.g. a rolling window or a ring of
order ids: `state = {"window": np.zeros(64)}`, used as `self.window[k]`). Every instance is
one row of a structured array holding both, so thousands of instances share one array, the
optimizer sweeps params by writing columns, and a checkpoint is a copy. Inside hooks `self`
is that row (a numba record) and `ctx` is the engine state; engine.strategy_api has the
calls a strategy makes.

Hooks (all optional, all return nothing):
- on_start(self, ctx): once, before the first event;
- on_data(self, ctx, ev): once per venue message of a subscribed instrument, after the whole
  message was applied (`ev` is its last row: ev.kind, ev.price, ev.size, ev.side, ...);
- on_tick(self, ctx, tag): a timer set with api.set_timer fired;
- on_order_update(self, ctx, oid, status): a report about one of its orders arrived;
- on_stop(self, ctx): once, after the last event.

Subscriptions: an instance receives on_data for the instruments named by its `instrument`,
`instrument2`, ... fields (int), or for every instrument when it has none.

Hooks are compiled with explicit signatures and passed to the loop as first-class functions,
so the loop itself is compiled once per strategy layout and cached on disk.

A hook that raises: numba cannot carry an exception through a first-class function call (it
prints it and carries on), so each hook is called through a small generated guard that
catches the exception and sets `ctl[CK_FAULT]`; the loop then disables that instance with an
A_STRATEGY_ERROR alert and goes on (engine/loop.py `strategy_fault`). Guards are generated
as files in numba's cache directory, named after a hash of the hook's source, so that numba
caches them on disk like the hooks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numba
import numpy as np
from numba import njit, typeof, types
from numba.core.errors import NumbaError, NumbaExperimentalFeatureWarning
from numba.core.types.function_type import CompileResultWAP
from numba.np.numpy_support import from_dtype

from engine.errors import CockpitError, UsageError
from engine.events import EVENT_DTYPE
from engine.state import CK_FAULT
from engine.user_files import import_user_file

_KEEP_ALIVE: list = []  # compiled hooks must outlive the function pointers handed out
_COMPILED: dict = {}  # (class, hook signatures) -> the compiled hooks (compile_hooks)

HOOKS = ("on_start", "on_data", "on_tick", "on_order_update", "on_stop")

warnings.filterwarnings("ignore", category=NumbaExperimentalFeatureWarning)


class StrategyError(CockpitError):
    """A strategy that cannot be compiled or loaded (names strategy, method and line)."""

    title = "Strategy error"


class Strategy:
    """Base class of user strategies: declare `params` and `state`, override hooks."""

    params: ClassVar[dict[str, Any]] = {}
    state: ClassVar[dict[str, Any]] = {}

    def on_start(self, ctx):
        """Called once before the first event."""

    def on_data(self, ctx, ev):
        """Called once per venue message of a subscribed instrument."""

    def on_tick(self, ctx, tag):
        """Called when a timer set with api.set_timer fires."""

    def on_order_update(self, ctx, oid, status):
        """Called when a report about one of this instance's orders arrives."""

    def on_stop(self, ctx):
        """Called once after the last event."""


class _NoStrategy(Strategy):
    """Stands in when a run has no strategy (the loop always takes hooks)."""


def _field_type(cls_name: str, name: str, value: Any):
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "ifb" or len(value) == 0:
            raise StrategyError(
                f"{cls_name}: array field {name!r} must be a non-empty 1-D int, float or bool "
                f"array, got {value.dtype} with shape {value.shape}"
            )
        return (value.dtype, value.shape)
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(value, (float, np.floating)):
        return np.dtype(np.float64)
    raise StrategyError(
        f"{cls_name}: field {name!r} has default {value!r} of type {type(value).__name__}; "
        "use int, float or bool"
    )


def strategy_dtype(cls: type) -> np.dtype:
    """The row dtype of a strategy class: its params, then its state fields."""
    params = dict(getattr(cls, "params", {}) or {})
    state = dict(getattr(cls, "state", {}) or {})
    both = set(params) & set(state)
    if both:
        raise StrategyError(f"{cls.__name__}: {sorted(both)} declared in both params and state")
    fields = []
    for k, v in {**params, **state}.items():
        t = _field_type(cls.__name__, k, v)
        fields.append((k, *t) if isinstance(t, tuple) else (k, t))
    if not fields:
        fields = [("_unused", np.dtype(np.int64))]
    for name, *_ in fields:
        if not name.isidentifier() or name.startswith("__"):
            raise StrategyError(f"{cls.__name__}: field name {name!r} is not an identifier")
    return np.dtype(fields)


def make_rows(cls: type, overrides: list[dict[str, Any]]) -> np.ndarray:
    """One row per instance: defaults, then each instance's overrides (validated)."""
    dt = strategy_dtype(cls)
    defaults = {**getattr(cls, "params", {}), **getattr(cls, "state", {})}
    rows = np.zeros(max(1, len(overrides)) if overrides else 1, dtype=dt)
    for name in dt.names:
        if name in defaults:
            rows[name] = defaults[name]
    for i, over in enumerate(overrides or []):
        for key, value in over.items():
            if key not in dt.names:
                known = ", ".join(getattr(cls, "params", {}))
                raise UsageError(f"{cls.__name__}: unknown parameter {key!r} (known: {known})")
            if dt.fields[key][0].shape:
                raise UsageError(f"{cls.__name__}: {key!r} is an array field, not a parameter")
            kind = dt.fields[key][0].kind
            try:
                if kind == "i":
                    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                        rows[i][key] = int(value)  # exact: ns times do not fit a float
                    elif float(value) != int(float(value)):
                        raise ValueError
                    else:
                        rows[i][key] = int(float(value))
                elif kind == "b":
                    rows[i][key] = bool(value)
                else:
                    rows[i][key] = float(value)
            except (TypeError, ValueError):
                raise UsageError(
                    f"{cls.__name__}: parameter {key!r} expects {dt.fields[key][0].name}, "
                    f"got {value!r}"
                ) from None
    return rows


def subscriptions(rows: np.ndarray, n_instruments: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of instances per instrument: (start[n_instruments + 1], instance ids)."""
    fields = [n for n in rows.dtype.names if re.fullmatch(r"instrument\d*", n)]
    per_inst: list[list[int]] = [[] for _ in range(n_instruments)]
    for j in range(len(rows)):
        if fields:
            wanted = sorted({int(rows[j][f]) for f in fields})
            for inst in wanted:
                if not 0 <= inst < n_instruments:
                    raise UsageError(
                        f"strategy instance {j}: instrument {inst} does not exist "
                        f"(the data has {n_instruments})"
                    )
                per_inst[inst].append(j)
        else:
            for inst in range(n_instruments):
                per_inst[inst].append(j)
    start = np.zeros(n_instruments + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(x) for x in per_inst])
    idx = np.array([j for x in per_inst for j in x], dtype=np.int64)
    return start, idx


_LINE = re.compile(r'File "([^"]+)", line (\d+)')
_AT = re.compile(r"at (\S+\.py) \((\d+)\)")  # how lowering errors give the place


def _compile_error(cls: type, hook: str, exc: Exception) -> StrategyError:
    text = str(exc)
    where = ""
    fn = getattr(cls, hook)
    src_file = inspect.getsourcefile(fn) or ""
    for path, line in [*_LINE.findall(text), *_AT.findall(text)]:
        if path == src_file or path.endswith(src_file.rsplit("/", 1)[-1]):
            try:
                code = open(path, encoding="utf-8").read().splitlines()[int(line) - 1].strip()
            except (OSError, IndexError):
                code = ""
            where = f" at {path}:{line}: {code}"
            break
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    # The first line is often only "Failed in nopython mode pipeline (step: ...)".
    telling = [ln for ln in lines if not ln.startswith(("Failed in ", "During: "))]
    detail = (telling or lines or [type(exc).__name__])[0]
    return StrategyError(
        f"strategy {cls.__name__}, method {hook}{where}: numba cannot compile it: {detail}"
    )


def hook_signatures(rows: np.ndarray, state: Any) -> dict[str, Any]:
    """The numba signature of each hook for this row layout and engine state."""
    rec = from_dtype(rows.dtype)
    st_t = typeof(state)
    ev_t = from_dtype(EVENT_DTYPE)
    i64 = types.int64
    return {
        "on_start": types.none(rec, st_t),
        "on_data": types.none(rec, st_t, ev_t),
        "on_tick": types.none(rec, st_t, i64),
        "on_order_update": types.none(rec, st_t, i64, i64),
        "on_stop": types.none(rec, st_t),
    }


def _compile_one(cls: type, hook: str, fn: Any, sig: Any):
    """Compile one hook; a stale on-disk cache entry (from another engine layout) is dropped.

    Hooks are compiled without numba's reference counting when they allow it (they allocate
    nothing, as the house rules ask): the engine's calls inlined into a hook touch many of
    the state's arrays, and with counting on each touch paid atomic increments and
    decrements, which measured about 1.5 us per order sent or canceled. A hook that does
    allocate (a numpy array, a list) is compiled with counting, correct and slower.
    """
    for nrt in (False, True):
        for attempt in range(2):
            disp = njit(cache=True, nogil=True, _nrt=nrt)(fn)
            try:
                disp.compile(sig)
                return disp
            except NumbaError as exc:
                if not nrt:
                    break  # allocates (or fails anyway): try with reference counting
                raise _compile_error(cls, hook, exc) from None
            except Exception as exc:
                # Unpickling an index written for an older state layout fails with plain
                # errors.
                if attempt == 0 and getattr(disp, "_cache", None) is not None:
                    disp._cache.flush()
                    continue
                if not nrt:
                    break
                raise _compile_error(cls, hook, exc) from None
    raise AssertionError("unreachable")


_GUARD_SOURCE = '''"""Generated by engine/strategy.py: calls {qualname} and catches its exceptions.

An exception cannot cross the loop's call through a function pointer; this guard turns it
into a flag the loop sees (ctl[CK_FAULT] = position of the hook in HOOKS, plus one).
"""

from numba import njit

hook = None  # the compiled hook, set before this guard is compiled


@njit(cache={cache}, nogil=True)
def guard({args}):
    try:
        hook({args})
    except Exception:
        st.ctl[{fault}] = {code}
'''


def _guard(hook: str, fn: Any, disp: Any, sig: Any):
    """The guarded hook (a dispatcher compiled for `sig`) that calls the compiled `disp`."""
    args = ", ".join(("row", "st", "a", "b")[: len(sig.args)])
    try:
        origin = Path(inspect.getsourcefile(fn) or "").read_bytes()
        cache = True
    except (OSError, TypeError):
        origin, cache = b"", False  # no source file (a REPL): compiled every time
    qualname = f"{fn.__module__}.{fn.__qualname__}"
    source = _GUARD_SOURCE.format(
        qualname=qualname, cache=cache, args=args, fault=CK_FAULT, code=HOOKS.index(hook) + 1
    )
    key = hashlib.sha256(source.encode() + origin + qualname.encode()).hexdigest()[:24]
    name = f"_cockpit_guard_{key}"
    module = sys.modules.get(name)
    if module is None:
        folder = Path(numba.config.CACHE_DIR or tempfile.gettempdir()) / "guards"
        path = folder / f"{name}.py"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(tmp, path)  # atomic: processes compiling at once agree
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    module.hook = disp
    module.guard.compile(sig)
    return module.guard


def compile_hooks(cls: type, rows: np.ndarray, state: Any, events: np.ndarray) -> tuple:
    """Compile the five hooks for this row layout and engine state; StrategyError if not.

    Memoized per (class, signatures): every Engine of one layout shares one compilation.
    Loading five hooks from numba's disk cache takes tens of ms under the GIL and numba's
    compiler lock, which serialised the optimizer's parallel evaluations, and each load kept
    new dispatchers alive for the life of the process.
    """
    sigs = hook_signatures(rows, state)
    key = (cls, tuple(sigs[h] for h in HOOKS))
    done = _COMPILED.get(key)
    if done is not None:
        return done
    out = {}
    for hook in HOOKS:
        fn = getattr(cls, hook, None)
        if fn is None or not callable(fn):
            fn = getattr(Strategy, hook)
        disp = _compile_one(cls, hook, fn, sigs[hook])
        guard = _guard(hook, fn, disp, sigs[hook])
        # A wrapper typed by signature (not by dispatcher identity), so the loop that
        # receives it is compiled once per layout and found in the disk cache next time.
        out[hook] = CompileResultWAP(guard.overloads[sigs[hook].args])
        _KEEP_ALIVE.append(disp)
        _KEEP_ALIVE.append(guard)
    done = tuple(out[h] for h in HOOKS)
    _COMPILED[key] = done
    return done


def load_strategy_class(path: str) -> type:
    """Import a strategy file and return its strategy class (the one Strategy subclass)."""
    try:
        module = import_user_file(path, "cockpit_user_", "strategy")
    except CockpitError:
        raise
    except Exception as exc:
        raise StrategyError(f"{path}: importing the strategy failed: {exc}") from None
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, Strategy)
        and v is not Strategy
        and v.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise StrategyError(f"{path}: expected one Strategy subclass, found {names}")
    return found[0]
