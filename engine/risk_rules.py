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

The rule is compiled once as a C-ABI function (numba `cfunc`) and the engine keeps only its
address, in the control vector: the state's numba type is the same whatever the rule, so
nothing recompiles and numba's disk cache holds, and the call is a plain indirect call
(about 2 ns) with no Python object anywhere near the loop. (A first-class function value in
the state was tried first: numba boxes its Python object through the reference counter on
every copy, which took the GIL and cost about 5 us per order.) It cannot take the engine
state itself; it gets the order, the position, the mid and the parameter vector (a pointer:
index it, `params[0]`, up to RULE_PARAMS). A rule must not raise and must not allocate.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import cfunc, types
from numba.core.errors import NumbaError
from numba.extending import intrinsic

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
    types.CPointer(types.float64),  # params
)

_COMPILED: dict[Any, Any] = {}  # function -> its cfunc (kept alive: the engine holds its address)


class RiskRuleError(CockpitError):
    """A risk rule that cannot be compiled (names the function and the line)."""

    title = "Risk rule error"


def compile_rule(fn: Callable) -> int:
    """Compile a rule (memoized) and return the address the engine calls it at."""
    done = _COMPILED.get(fn)
    if done is not None:
        return done.address
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
    try:
        compiled = cfunc(RULE_SIGNATURE, nopython=True, cache=_has_source(fn))(fn)
    except NumbaError as exc:
        raise RiskRuleError(f"risk rule {name}: numba cannot compile it: {_first(exc)}") from None
    except Exception as exc:
        raise RiskRuleError(f"risk rule {name}: {type(exc).__name__}: {exc}") from None
    _COMPILED[fn] = compiled
    return compiled.address


@intrinsic
def call_rule(typingctx, addr, strat, inst, side, price, qty, position, mid_x2, now, arr, at):
    """Call the rule at `addr` (an int64 from compile_rule) with the order; its `params` are
    the float64 values of `arr` from index `at` on, passed as a pointer."""
    sig = types.int64(addr, strat, inst, side, price, qty, position, mid_x2, now, arr, at)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64] * 8 + [ir.DoubleType().as_pointer()])
        fptr = builder.inttoptr(args[0], fnty.as_pointer())
        data = context.make_array(signature.args[9])(context, builder, args[9]).data
        return builder.call(fptr, [*args[1:9], builder.gep(data, [args[10]])])

    return sig, codegen


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
    from engine.errors import UsageError
    from engine.user_files import import_user_file

    path, sep, func = spec.rpartition(":")
    if not sep or not path or not func:
        raise UsageError(f"--risk-rule {spec!r}: expected FILE.py:FUNCTION")
    try:
        module = import_user_file(path, "cockpit_rule_", "risk rule")
    except CockpitError as exc:
        raise UsageError(f"--risk-rule {spec!r}: {exc}") from None
    except Exception as exc:
        raise RiskRuleError(f"{path}: importing the risk rule failed: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise UsageError(f"--risk-rule {spec!r}: {path} has no function {func!r}")
    return fn
