"""The search space and the searchers of the optimizer (engine/optimizer.py).

The search (the `cma` package, ask/tell) runs in a coordinate system where every float
parameter is mapped to [0, 1] (low to high) and every integer parameter keeps its integer
units, so that cma's integer handling (`integer_variables`: a floor on the step size of
those coordinates, integer centering, rounded candidates) works on the integer lattice.
Bounds are cma's `BoundTransform` (a smooth, monotone map onto the box: every candidate is
inside it, none is "repaired" behind cma's back); an integer range [lo, hi] is the box
[lo - 0.5, hi + 0.5) in cma's coordinates, so after rounding every integer of the range is
equally reachable. `CMA_stds` scales the first step to the range (sigma0 = 0.3: a third of
every range). Candidates are decoded to parameter values (rounded and clipped once more, so
a parameter is never outside its bounds or fractional).

cma samples from a private numpy Generator seeded with the run's seed (its `randn`
option), never from numpy's global state, which it would otherwise reseed.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from engine.errors import UsageError
from engine.evaluation import EvalResult

DEFAULT_SIGMA0: Final = 0.3
"""First step size, as a fraction of every parameter's range."""
INT_EDGE: Final = 0.5 - 1e-9
"""Half-width of an integer's cell in cma's coordinates (every integer equally reachable)."""
FLAT_FITNESS_GENERATIONS: Final = 10
"""Generations of equal scores cma tolerates before stopping (default 1: too few for
strategies whose poor settings all score 0 by never trading)."""

Method = Literal["cma", "random"]


# ------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """One optimized parameter: a name of the strategy's `params`, bounds, integer or not."""

    name: str
    low: float
    high: float
    integer: bool = False

    def describe(self) -> str:
        kind = ":int" if self.integer else ""
        return f"{self.name}={_num(self.low)}:{_num(self.high)}{kind}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def parse_param_spec(text: str) -> ParamSpec:
    """'NAME=LOW:HIGH' or 'NAME=LOW:HIGH:int' -> ParamSpec; UsageError saying what is wrong."""
    name, sep, rng = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--param {text!r}: expected NAME=LOW:HIGH[:int]")
    parts = [p.strip() for p in rng.split(":")]
    integer = False
    if len(parts) == 3:
        if parts[2].lower() not in ("int", "integer"):
            raise UsageError(f"--param {text!r}: the third field may only be 'int'")
        integer = True
        parts = parts[:2]
    if len(parts) != 2:
        raise UsageError(f"--param {text!r}: expected NAME=LOW:HIGH[:int]")
    try:
        low, high = (float(p.replace("_", "")) for p in parts)
    except ValueError:
        raise UsageError(f"--param {text!r}: bounds must be numbers") from None
    return ParamSpec(name, low, high, integer)


def check_space(cls: type, space: Sequence[ParamSpec], fixed: dict[str, Any]) -> list[ParamSpec]:
    """The specs checked against the strategy's params (integers follow int defaults).

    Raises UsageError for an unknown or repeated name, a name both fixed and optimized,
    non-finite or inverted bounds, fractional bounds of an integer parameter.
    """
    params = dict(getattr(cls, "params", {}) or {})
    known = ", ".join(params) or "none"
    if not space:
        raise UsageError("nothing to optimize: give at least one --param NAME=LOW:HIGH")
    seen: set[str] = set()
    out = []
    for s in space:
        if s.name not in params:
            raise UsageError(f"{cls.__name__}: unknown parameter {s.name!r} (known: {known})")
        if s.name in seen:
            raise UsageError(f"parameter {s.name!r} given twice")
        if s.name in fixed:
            raise UsageError(f"parameter {s.name!r} is both fixed and optimized")
        seen.add(s.name)
        default = params[s.name]
        if isinstance(default, np.ndarray):
            raise UsageError(f"{cls.__name__}: {s.name!r} is an array, not a parameter")
        if not (math.isfinite(s.low) and math.isfinite(s.high)):
            raise UsageError(f"parameter {s.name!r}: bounds must be finite numbers")
        if s.low >= s.high:
            what = "inverted" if s.low > s.high else "empty"
            raise UsageError(
                f"parameter {s.name!r}: bounds {_num(s.low)}:{_num(s.high)} are {what} "
                "(need LOW < HIGH; fix a parameter with NAME=VALUE instead)"
            )
        integer = s.integer or isinstance(default, (bool, int, np.integer))
        if integer and not (float(s.low).is_integer() and float(s.high).is_integer()):
            raise UsageError(
                f"parameter {s.name!r} is an integer: bounds {s.low}:{s.high} must be whole"
            )
        if isinstance(default, bool) and not (0 <= s.low and s.high <= 1):
            raise UsageError(f"parameter {s.name!r} is a bool: bounds must be within 0:1")
        out.append(ParamSpec(s.name, float(s.low), float(s.high), integer))
    return out


class SearchSpace:
    """The map between cma's coordinates and parameter values (see the module docstring)."""

    def __init__(self, cls: type, specs: Sequence[ParamSpec]) -> None:
        self.specs = list(specs)
        defaults = dict(getattr(cls, "params", {}) or {})
        self._bool = [isinstance(defaults.get(s.name), bool) for s in self.specs]
        self.dimension = len(self.specs)
        self.integer_index = [i for i, s in enumerate(self.specs) if s.integer]
        lo, hi, x0, stds = [], [], [], []
        for s in self.specs:
            if s.integer:
                lo.append(s.low - INT_EDGE)
                hi.append(s.high + INT_EDGE)
                x0.append(0.5 * (s.low + s.high))
                stds.append(s.high - s.low + 1.0)
            else:
                lo.append(0.0)
                hi.append(1.0)
                x0.append(0.5)
                stds.append(1.0)
        self.lower = np.array(lo)
        self.upper = np.array(hi)
        self.x0 = np.array(x0)
        self.stds = np.array(stds)

    def decode(self, x: Sequence[float]) -> dict[str, Any]:
        """Parameter values of a point of cma's space (rounded, clipped to the bounds)."""
        out: dict[str, Any] = {}
        for s, is_bool, v in zip(self.specs, self._bool, x, strict=True):
            if s.integer:
                k = int(min(max(np.rint(v), s.low), s.high))
                out[s.name] = bool(k) if is_bool else k
            else:
                u = min(max(float(v), 0.0), 1.0)
                out[s.name] = min(max(s.low + u * (s.high - s.low), s.low), s.high)
        return out

    def uniform(self, rng: np.random.Generator, n: int) -> list[np.ndarray]:
        """n points drawn uniformly: floats uniform in the range, integers uniform over it."""
        pts = []
        for _ in range(n):
            x = np.empty(self.dimension)
            for i, s in enumerate(self.specs):
                if s.integer:
                    x[i] = float(rng.integers(int(s.low), int(s.high) + 1))
                else:
                    x[i] = rng.random()
            pts.append(x)
        return pts


# ------------------------------------------------------------------------------ searchers


class CmaSearcher:
    """cma's ask/tell with the options of the module docstring.

    Two cma quirks are worked around here (cma 4.x):
    - its integer handling draws from numpy's *global* random state (not from `randn`), so
      every call into cma runs with a private global state of its own, seeded by the run's
      seed, and the caller's global state is put back afterwards: the same seed gives the
      same search whatever else the process does;
    - a one-dimensional search fails after a few generations (pycma issue #302), so one
      parameter is searched together with a dummy second coordinate that nothing reads.
    """

    _GLOBAL_RNG = threading.Lock()

    def __init__(self, space: SearchSpace, popsize: int | None, seed: int, sigma0: float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cma warns that matplotlib is missing
            import cma
        rng = np.random.default_rng(seed)

        def randn(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape)

        self._dims = len(space.x0)
        pad = self._dims == 1
        lower, upper = space.lower.tolist(), space.upper.tolist()
        x0, stds = space.x0.tolist(), space.stds.tolist()
        if pad:
            lower, upper, x0, stds = lower + [0.0], upper + [1.0], x0 + [0.5], stds + [1.0]
        opts: dict[str, Any] = {
            "bounds": [lower, upper],
            "CMA_stds": stds,
            "randn": randn,
            "verbose": -9,
            "tolflatfitness": FLAT_FITNESS_GENERATIONS,
        }
        if space.integer_index:
            opts["integer_variables"] = list(space.integer_index)
        if popsize is not None:
            opts["popsize"] = popsize
        self._np_state = np.random.RandomState(seed).get_state()
        self._asked: list[np.ndarray] = []
        self.es = self._in_cma(lambda: cma.CMAEvolutionStrategy(x0, sigma0, opts))
        self.popsize = int(self.es.popsize)

    def _in_cma(self, call):
        """Run `call` with this search's own numpy global random state."""
        with self._GLOBAL_RNG, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved = np.random.get_state()
            np.random.set_state(self._np_state)
            try:
                return call()
            finally:
                self._np_state = np.random.get_state()
                np.random.set_state(saved)

    def ask(self) -> list[np.ndarray]:
        self._asked = [np.asarray(x, float) for x in self._in_cma(self.es.ask)]
        return [x[: self._dims].copy() for x in self._asked]

    def tell(self, xs: list[np.ndarray], losses: list[float]) -> None:
        # The full vectors asked (with the dummy coordinate, if any), in the order asked.
        full = self._asked if len(self._asked) == len(xs) else [np.asarray(x) for x in xs]
        self._in_cma(lambda: self.es.tell(full, losses))

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)

    def stop(self) -> str | None:
        reasons = {k: v for k, v in self.es.stop().items() if k != "maxfevals"}
        return ", ".join(sorted(reasons)) or None


class RandomSearcher:
    """Plain random search with cma's interface (uniform in the box, generation by generation)."""

    def __init__(self, space: SearchSpace, popsize: int | None, seed: int, sigma0: float):
        self.space = space
        self.rng = np.random.default_rng(seed)
        # The same population as CMA-ES would use: comparisons spend budgets alike.
        self.popsize = popsize or CmaSearcher(space, None, seed, sigma0).popsize
        self.sigma = None

    def ask(self) -> list[np.ndarray]:
        return self.space.uniform(self.rng, self.popsize)

    def tell(self, xs: list[np.ndarray], losses: list[float]) -> None:
        pass

    def stop(self) -> str | None:
        return None


def penalised_losses(results: Sequence[EvalResult]) -> list[float]:
    """cma's losses (-score); a failure counts as worse than the worst success of the batch."""
    ok = [-r.score for r in results if r.ok and r.score is not None]
    if ok:
        worst, best = max(ok), min(ok)
        penalty = worst + 1.0 + (worst - best)
    else:
        penalty = 1.0  # all failed: equal losses (cma widens its step on flat fitness)
    return [-r.score if r.ok and r.score is not None else penalty for r in results]


def searcher_for(method: Method):
    """The searcher class of a method name."""
    return CmaSearcher if method == "cma" else RandomSearcher
