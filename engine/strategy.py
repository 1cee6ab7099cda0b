"""Strategies: plain Python classes compiled into the jitted loop.

A user writes::

    class MarketMaker(Strategy):
        params = {"instrument": 0, "half_spread": 2, "size": 1, "skew": 0.5}
        state = {"bid": -1, "ask": -1}

        def on_data(self, ctx, ev):
            ...  # numba-compatible Python; self.half_spread reads, self.bid = oid writes

`params` and `state` declare fields with defaults (int -> int64, float -> float64, bool ->
bool). Every instance is one row of a structured array holding both, so thousands of
instances share one array, the optimizer sweeps params by writing columns, and a checkpoint
is a copy. Inside hooks `self` is that row (a numba record) and `ctx` is the engine state;
engine.strategy_api has the calls a strategy makes.

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
"""

from __future__ import annotations

import inspect
import re
import warnings
from typing import Any, ClassVar

import numpy as np
from numba import njit, typeof, types
from numba.core.errors import NumbaError, NumbaExperimentalFeatureWarning
from numba.core.types.function_type import CompileResultWAP
from numba.np.numpy_support import from_dtype

from engine.errors import CockpitError, UsageError
from engine.events import EVENT_DTYPE

_KEEP_ALIVE: list = []  # compiled hooks must outlive the function pointers handed out

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


def _field_type(cls_name: str, name: str, value: Any) -> np.dtype:
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
    fields = [(k, _field_type(cls.__name__, k, v)) for k, v in {**params, **state}.items()]
    if not fields:
        fields = [("_unused", np.dtype(np.int64))]
    for name, _ in fields:
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
            kind = dt.fields[key][0].kind
            try:
                if kind == "i":
                    if float(value) != int(float(value)):
                        raise ValueError
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


def _compile_error(cls: type, hook: str, exc: Exception) -> StrategyError:
    text = str(exc)
    where = ""
    fn = getattr(cls, hook)
    src_file = inspect.getsourcefile(fn) or ""
    for path, line in _LINE.findall(text):
        if path == src_file or path.endswith(src_file.rsplit("/", 1)[-1]):
            try:
                code = open(path, encoding="utf-8").read().splitlines()[int(line) - 1].strip()
            except (OSError, IndexError):
                code = ""
            where = f" at {path}:{line}: {code}"
            break
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    detail = re.sub(r"\x1b\[[0-9;]*m", "", first)
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
    """Compile one hook; a stale on-disk cache entry (from another engine layout) is dropped."""
    for attempt in range(2):
        disp = njit(cache=True, nogil=True)(fn)
        try:
            disp.compile(sig)
            return disp
        except NumbaError as exc:
            raise _compile_error(cls, hook, exc) from None
        except Exception as exc:
            # Unpickling an index written for an older state layout fails with plain errors.
            if attempt == 0 and getattr(disp, "_cache", None) is not None:
                disp._cache.flush()
                continue
            raise _compile_error(cls, hook, exc) from None
    raise AssertionError("unreachable")


def compile_hooks(cls: type, rows: np.ndarray, state: Any, events: np.ndarray) -> tuple:
    """Compile the five hooks for this row layout and engine state; StrategyError if not."""
    sigs = hook_signatures(rows, state)
    out = {}
    for hook in HOOKS:
        fn = getattr(cls, hook, None)
        if fn is None or not callable(fn):
            fn = getattr(Strategy, hook)
        disp = _compile_one(cls, hook, fn, sigs[hook])
        # A wrapper typed by signature (not by dispatcher identity), so the loop that
        # receives it is compiled once per layout and found in the disk cache next time.
        out[hook] = CompileResultWAP(disp.overloads[sigs[hook].args])
        _KEEP_ALIVE.append(disp)
    return out["on_start"], out["on_data"], out["on_tick"], out["on_order_update"], out["on_stop"]


def load_strategy_class(path: str) -> type:
    """Import a strategy file and return its strategy class (the one Strategy subclass)."""
    import importlib.util
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such strategy file")
    name = "cockpit_user_" + re.sub(r"\W", "_", p.stem)
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
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
