"""User-defined pre-trade risk rules: a plain function compiled into the engine's risk check.

A rule is a numba-compatible function of the order and what the engine knows about it:

    def max_qty_near_open(strat, inst, side, price, qty, position, mid_x2, now, params):
        if now % 86_400_000_000_000 < 600_000_000_000 and qty > params[0]:
            return 1          # deny, with the user's own code 1
        return 0              # allow

Arguments are int64 (prices in ticks, quantities in lots, `mid_x2` twice the mid in ticks or
0, `now` engine time in ns, `strat` the instance or -1 for manual orders) and `params` a
float64 array of RULE_PARAMS values set in EngineConfig.risk_rule_params. It returns 0 to let
the order go, or a positive code of the user's choosing: the order is denied with reason
R_RISK_USER_RULE and an A_USER_RULE alert whose value is that code. Orders sent by flatten
are exempt, like from every throttle (engine/risk.py).

The rule is compiled once with a fixed signature and travels in the engine state as a
first-class function, so the loop is not recompiled per rule and stays in numba's disk cache.
It cannot take the engine state itself (the state's type contains the rule's type). A rule
must not raise: numba cannot carry an exception out of a first-class function call.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from numba import njit, types
from numba.core.errors import NumbaError
from numba.core.types.function_type import CompileResultWAP

from engine.errors import CockpitError

RULE_PARAMS = 16
"""Length of the float parameter vector every rule receives."""

RULE_SIGNATURE = types.int64(
    types.int64,  # strat
    types.int64,  # inst
    types.int64,  # side
    types.int64,  # price
    types.int64,  # qty
    types.int64,  # position
    types.int64,  # mid_x2
    types.int64,  # now
    types.float64[::1],  # params
)

_COMPILED: dict[Any, CompileResultWAP] = {}
_KEEP_ALIVE: list = []


class RiskRuleError(CockpitError):
    """A risk rule that cannot be compiled (names the function and the line)."""

    title = "Risk rule error"


def allow_all(strat, inst, side, price, qty, position, mid_x2, now, params):
    """The rule in force when the user gives none."""
    return 0


def compile_rule(fn: Callable | None) -> CompileResultWAP:
    """Compile a rule for the engine state (memoized; None means allow_all)."""
    fn = fn or allow_all
    done = _COMPILED.get(fn)
    if done is not None:
        return done
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        nparams = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        nparams = -1
    if nparams != len(RULE_SIGNATURE.args):
        raise RiskRuleError(
            f"risk rule {name}: takes {nparams} arguments, expected "
            f"{len(RULE_SIGNATURE.args)} (strat, inst, side, price, qty, position, mid_x2, "
            "now, params)"
        )
    disp = njit(cache=_has_source(fn), nogil=True)(fn)
    try:
        disp.compile(RULE_SIGNATURE)
    except NumbaError as exc:
        raise RiskRuleError(f"risk rule {name}: numba cannot compile it: {_first(exc)}") from None
    except Exception as exc:
        raise RiskRuleError(f"risk rule {name}: {type(exc).__name__}: {exc}") from None
    done = CompileResultWAP(disp.overloads[RULE_SIGNATURE.args])
    _KEEP_ALIVE.append(disp)
    _COMPILED[fn] = done
    return done


def _has_source(fn: Callable) -> bool:
    try:
        return inspect.getsourcefile(fn) is not None
    except TypeError:
        return False


def _first(exc: Exception) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()]
    telling = [ln for ln in lines if ln and not ln.startswith(("Failed in ", "During: "))]
    return (telling or [type(exc).__name__])[0]


def load_rule(spec: str) -> Callable:
    """`FILE.py:function` (as typed on the command line) to the function it names."""
    import importlib.util
    from pathlib import Path

    from engine.errors import UsageError

    path, sep, func = spec.rpartition(":")
    if not sep or not path or not func:
        raise UsageError(f"--risk-rule {spec!r}: expected FILE.py:FUNCTION")
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--risk-rule {spec!r}: no such file {path}")
    mod_name = "cockpit_rule_" + re.sub(r"\W", "_", p.stem)
    mspec = importlib.util.spec_from_file_location(mod_name, p)
    if mspec is None or mspec.loader is None:
        raise UsageError(f"--risk-rule {spec!r}: cannot import {path}")
    module = importlib.util.module_from_spec(mspec)
    import sys

    sys.modules[mod_name] = module
    try:
        mspec.loader.exec_module(module)
    except Exception as exc:
        raise RiskRuleError(f"{path}: importing the risk rule failed: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise UsageError(f"--risk-rule {spec!r}: {path} has no function {func!r}")
    return fn
