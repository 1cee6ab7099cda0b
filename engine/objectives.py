"""What the optimizer maximises: a float from a backtest report (engine/backtest.py).

Built in (all maximised, all read from `BacktestReport`, so an optimized score is the number
`cockpit backtest` prints for the same parameters):
- sharpe: the report's annualised Sharpe ratio; a run whose equity never moves (no trade)
  has no ratio in the report and scores 0, as flat returns would.
- pnl: total PnL net of fees, quote currency.
- calmar: annualised return over the largest drawdown, both as fractions of capital:
  (return_frac * year / duration) / max(max_drawdown_frac, 1e-4). The floor (one basis
  point) keeps a run that never dipped from scoring infinity.
- python:module.func: a user function `func(report) -> float`, imported from `module` (the
  current directory is searched first). On a Dask cluster the module must be importable by
  the workers too.

A score that is not a finite float (NaN, inf, None, a string) fails that evaluation: it is
recorded with the message and the optimizer goes on (engine/optimizer.py).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from engine.backtest import SECONDS_PER_YEAR, BacktestReport
from engine.errors import UsageError

Objective = Callable[[BacktestReport], float]

CALMAR_DRAWDOWN_FLOOR: Final = 1e-4
"""Smallest drawdown fraction a Calmar ratio divides by."""


def sharpe(report: BacktestReport) -> float:
    """The report's Sharpe ratio, 0 when it has none (equity never moved)."""
    return 0.0 if report.sharpe is None else float(report.sharpe)


def pnl(report: BacktestReport) -> float:
    """Total PnL net of fees, quote currency."""
    return float(report.total_pnl)


def calmar(report: BacktestReport) -> float:
    """Annualised return over the largest drawdown (fractions of capital); 0 without time."""
    if not report.duration_s > 0:
        return 0.0
    annual = report.return_frac * SECONDS_PER_YEAR / report.duration_s
    return annual / max(report.max_drawdown_frac, CALMAR_DRAWDOWN_FLOOR)


BUILTIN: Final[dict[str, Objective]] = {"sharpe": sharpe, "pnl": pnl, "calmar": calmar}


def resolve(spec: str | Objective) -> Objective:
    """The function an objective spec names; UsageError with the reason if it cannot be had."""
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise UsageError(f"objective must be a name or a function, got {spec!r}")
    if spec in BUILTIN:
        return BUILTIN[spec]
    if not spec.startswith("python:"):
        raise UsageError(
            f"objective {spec!r} unknown (use {', '.join(BUILTIN)} or python:module.func)"
        )
    target = spec[len("python:") :]
    module_name, _, func_name = target.rpartition(".")
    if not module_name or not func_name:
        raise UsageError(f"objective {spec!r}: expected python:module.func")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(
            f"objective {spec!r}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise UsageError(f"objective {spec!r}: {module_name} has no function {func_name}")
    return fn


def name_of(spec: str | Objective) -> str:
    """A printable name of an objective spec."""
    if isinstance(spec, str):
        return spec
    return f"python:{getattr(spec, '__module__', '?')}.{getattr(spec, '__qualname__', '?')}"


def score(fn: Objective, report: BacktestReport) -> float:
    """fn(report) as a finite float; ValueError naming what came back otherwise."""
    value: Any = fn(report)
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        raise ValueError(f"objective returned {type(value).__name__} {value!r}, not a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"objective returned {value}")
    return value
