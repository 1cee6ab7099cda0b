"""Measure the optimizer: evaluations per second on 1 worker vs all cores, and CMA-ES
against plain random search with the same budget on the example problem.

The example problem: the Momentum example (examples/momentum.py) on 1M events of the seeded
synthetic market with a jumpy fundamental (a jump a minute, 0.3 % on average: the mid
catches up over seconds, which a momentum strategy can ride; on the default market with a
jump every ten minutes every setting loses and the best score is "never trade"), default
fees and latencies, searching five parameters (EXAMPLE_SPACE).

1. Throughput: one batch of parameter sets (uniform in EXAMPLE_SPACE, fixed seed), each a
   full backtest of the 1M events, evaluated by the optimizer's ThreadPool with 1 thread,
   then with every core, in --repeats rounds (after a warm-up batch that compiles).
   evals/s = batch / wall time; parallel efficiency = evals/s(N) / (N * evals/s(1)) of
   the same round.
   The number that matters: efficiency >= 0.80 (TARGET_EFFICIENCY).
   The machine may be shared: before every round the script measures the ceiling any
   program could reach then (the efficiency of a GIL-free numba loop on 1 vs N threads),
   and the CPU time per evaluation on 1 and N threads (equal: the threads add no work), so
   a low figure can be told apart from a machine short of cores.
   --processes adds the same batch on a fork-based process pool (the alternative to threads,
   for the record in ARCHITECTURE.md).
2. Search quality: for each seed, optimize() with method cma and with method random, same
   budget, population and seed, objective sharpe, 30 % held out; the best in-sample score of
   each and the out-of-sample score of those parameters, side by side.
   The number that matters: CMA-ES's best in-sample score above random search's.

    .venv/bin/python benchmarks/bench_optimizer.py [--events 1000000] [--batch 16]
        [--repeats 3] [--budget 160] [--popsize 8] [--seeds 1,2,3] [--processes]
        [--skip-throughput] [--skip-search] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from engine.bench import machine as engine_machine
from engine.config import EngineConfig
from engine.evaluation import EvalContext, EvalTask, StrategyRef, ThreadPool, evaluate
from engine.optimizer import (
    OptimizeConfig,
    ParamSpec,
    SearchSpace,
    check_space,
    default_workers,
    optimize,
)
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate

TARGET_EFFICIENCY = 0.80
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "momentum.py"
EXAMPLE_SPACE = (
    ParamSpec("threshold", 0.5, 20.0),
    ParamSpec("fast_ns", 100_000_000, 5_000_000_000, integer=True),
    ParamSpec("slow_ns", 2_000_000_000, 60_000_000_000, integer=True),
    ParamSpec("stop_ticks", 0, 200, integer=True),
    ParamSpec("max_units", 1, 5, integer=True),
)


def example_market(n_events: int):
    """The example problem's market (see the module docstring)."""
    return generate(SyntheticConfig(n_events=n_events, seed=7, jump_rate=1 / 60, jump_size=0.003))


def machine() -> dict:
    return {
        **engine_machine(),
        "usable_cores": default_workers(),
        "platform": platform.platform(),
    }


def load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ------------------------------------------------------------------------ ceiling


@numba.njit(nogil=True, cache=True)
def _spin(n):
    s = 0.0
    for i in range(n):
        s += np.sqrt(i * 1.0)
    return s


def ceiling(workers: int, n: int = 150_000_000) -> float:
    """Parallel efficiency of a GIL-free loop on `workers` threads now (1.0: idle cores)."""
    _spin(10)
    t0 = time.perf_counter()
    for _ in range(workers):
        _spin(n)
    one = time.perf_counter() - t0
    with ThreadPoolExecutor(workers) as ex:
        t0 = time.perf_counter()
        list(ex.map(_spin, [n] * workers))
        many = time.perf_counter() - t0
    return one / many / workers


# --------------------------------------------------------------------- throughput


def _context(stream, cls) -> EvalContext:
    ctx = EvalContext(
        strategy=StrategyRef.of(cls),
        fixed={},
        config=EngineConfig(),
        capital=100_000.0,
        objective="sharpe",
        windows=[(stream, None)],
    )
    ctx._cache["cls"] = cls
    return ctx


def _tasks(cls, batch: int) -> list[EvalTask]:
    space = SearchSpace(cls, check_space(cls, EXAMPLE_SPACE, {}))
    pts = space.uniform(np.random.default_rng(12345), batch)
    return [EvalTask(0, 0, i, space.decode(x)) for i, x in enumerate(pts)]


def _batch(run, n_tasks: int) -> tuple[float, float]:
    """(evals/s, CPU seconds of this process per evaluation) of one batch."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = run()
    rate = n_tasks / (time.perf_counter() - t0)
    assert all(r.ok for r in res), [r.message for r in res if not r.ok][:1]
    return rate, (time.process_time() - c0) / n_tasks


_FORK_CTX: EvalContext | None = None


def _fork_eval(task: EvalTask):
    assert _FORK_CTX is not None
    return evaluate(_FORK_CTX, task)


def throughput(stream, cls, batch: int, repeats: int, processes: bool) -> dict:
    """Rounds of: the ceiling now, a batch on 1 thread, on N threads (and N processes)."""
    import multiprocessing as mp

    global _FORK_CTX
    n = default_workers()
    ctx = _context(stream, cls)
    tasks = _tasks(cls, batch)
    evaluate(ctx, tasks[0])  # compile the hooks and the loop before anything is timed
    report: dict = {"batch": batch, "workers": n, "load_before": load(), "rounds": []}
    one, many = ThreadPool(ctx, 1), ThreadPool(ctx, n)
    procs = None
    if processes:
        _FORK_CTX = ctx  # inherited by fork(): nothing of the context is pickled
        procs = ProcessPoolExecutor(n, mp_context=mp.get_context("fork"))
        list(procs.map(_fork_eval, tasks[:n]))  # warm-up
    try:
        many.run(tasks[:n], lambda r: None, None)  # warm-up
        for _ in range(repeats):
            rnd: dict = {"ceiling": round(ceiling(n), 3)}
            rnd["threads_1"], rnd["cpu_s_per_eval_1"] = _batch(
                lambda: one.run(tasks, lambda r: None, None), len(tasks)
            )
            rnd[f"threads_{n}"], rnd[f"cpu_s_per_eval_{n}"] = _batch(
                lambda: many.run(tasks, lambda r: None, None), len(tasks)
            )
            if procs is not None:
                rnd[f"processes_{n}"], _ = _batch(
                    lambda: list(procs.map(_fork_eval, tasks)), len(tasks)
                )
            rnd["efficiency"] = rnd[f"threads_{n}"] / (n * rnd["threads_1"])
            report["rounds"].append(rnd)
    finally:
        one.close()
        many.close()
        if procs is not None:
            procs.shutdown()
    rounds = report["rounds"]
    for key in ("threads_1", f"threads_{n}", *([f"processes_{n}"] if processes else [])):
        vals = [r[key] for r in rounds]
        report[key] = {"best": max(vals), "median": statistics.median(vals)}
    report["efficiency_best"] = max(r["efficiency"] for r in rounds)
    report["efficiency_median"] = statistics.median(r["efficiency"] for r in rounds)
    top = max(rounds, key=lambda r: r["ceiling"])
    report["efficiency_at_best_ceiling"] = {
        "ceiling": top["ceiling"],
        "efficiency": top["efficiency"],
    }
    report["efficiency_vs_ceiling"] = statistics.median(
        r["efficiency"] / r["ceiling"] for r in rounds
    )
    # CPU seconds per evaluation: equal on 1 and N threads means the threads add no work
    # (no contention burning CPU); what is left of a shortfall is time without a core.
    report["cpu_s_per_eval_1"] = statistics.median(r["cpu_s_per_eval_1"] for r in rounds)
    report[f"cpu_s_per_eval_{n}"] = statistics.median(r[f"cpu_s_per_eval_{n}"] for r in rounds)
    if processes:
        report["process_efficiency_best"] = max(
            r[f"processes_{n}"] / (n * r["threads_1"]) for r in rounds
        )
    report["load_after"] = load()
    return report


# ------------------------------------------------------------------- search quality


def search(stream, cls, budget: int, popsize: int, seeds: list[int]) -> dict:
    rows = []
    for seed in seeds:
        row: dict = {"seed": seed}
        for method in ("cma", "random"):
            cfg = OptimizeConfig(
                space=EXAMPLE_SPACE,
                objective="sharpe",
                budget=budget,
                popsize=popsize,
                seed=seed,
                holdout=0.3,
                method=method,
            )
            res = optimize(stream, cls, cfg)
            row[method] = {
                "best_score": res.best_score,
                "best_oos_score": res.best_oos_score,
                "evaluations": len(res.evaluations),
                "failed": res.failed,
                "evals_per_second": res.evals_per_second,
                "seconds": res.seconds,
                "stop": res.windows[0].stop_reason,
                "best_params": res.best_params,
            }
        row["cma_better"] = (row["cma"]["best_score"] or -np.inf) > (
            row["random"]["best_score"] or -np.inf
        )
        rows.append(row)
        print(
            f"  seed {seed}: cma {row['cma']['best_score']:.1f} (oos "
            f"{row['cma']['best_oos_score']:.1f})  random {row['random']['best_score']:.1f} "
            f"(oos {row['random']['best_oos_score']:.1f})",
            file=sys.stderr,
        )
    return {
        "budget": budget,
        "popsize": popsize,
        "objective": "sharpe",
        "holdout": 0.3,
        "runs": rows,
        "cma_wins": sum(r["cma_better"] for r in rows),
        "cma_mean": statistics.mean(r["cma"]["best_score"] for r in rows),
        "random_mean": statistics.mean(r["random"]["best_score"] for r in rows),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=16, help="parameter sets per timed batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=int, default=160)
    p.add_argument("--popsize", type=int, default=8)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--processes", action="store_true", help="also time a fork process pool")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    cls = load_strategy_class(str(EXAMPLE))
    stream = example_market(args.events)
    out: dict = {
        "machine": machine(),
        "events": len(stream),
        "space": [s.describe() for s in EXAMPLE_SPACE],
    }
    if not args.skip_throughput:
        out["throughput"] = throughput(stream, cls, args.batch, args.repeats, args.processes)
    if not args.skip_search:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        out["search"] = search(stream, cls, args.budget, args.popsize, seeds)
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    m = out["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['platform']}")
    print(f"python {m['python']}, numpy {m['numpy']}, numba {m['numba']}; {out['events']:,} events")
    t = out.get("throughput")
    if t:
        n = t["workers"]
        print(f"load average before {t['load_before']}, after {t['load_after']}")
        print(f"evaluations/s, batches of {t['batch']} backtests of {out['events']:,} events:")
        print(f"  {'round':>5}  {'ceiling':>7}  {'1 thread':>8}  {n} threads  efficiency", end="")
        print(f"  {n} procs" if f"processes_{n}" in t else "")
        for i, r in enumerate(t["rounds"], 1):
            line = (
                f"  {i:>5}  {r['ceiling']:>7.0%}  {r['threads_1']:>8.2f}  {r[f'threads_{n}']:>9.2f}"
                f"  {r['efficiency']:>10.0%}"
            )
            if f"processes_{n}" in r:
                line += f"  {r[f'processes_{n}']:>7.2f}"
            print(line)
        ok = "meets" if t["efficiency_best"] >= TARGET_EFFICIENCY else "BELOW"
        top = t["efficiency_at_best_ceiling"]
        print(
            f"parallel efficiency: best {t['efficiency_best']:.0%}, median "
            f"{t['efficiency_median']:.0%} ({ok} the {TARGET_EFFICIENCY:.0%} target); "
            f"{top['efficiency']:.0%} in the round with the most free cores (ceiling "
            f"{top['ceiling']:.0%}); median {t['efficiency_vs_ceiling']:.0%} of the ceiling"
        )
        print(
            f"CPU s per evaluation: 1 thread {t['cpu_s_per_eval_1']:.3f}, {n} threads "
            f"{t[f'cpu_s_per_eval_{n}']:.3f}"
        )
        print(
            "(ceiling: parallel efficiency of a GIL-free numba loop on the same threads just "
            "before the round; below 100% the machine, not the optimizer, is short of cores)"
        )
    s = out.get("search")
    if s:
        print(
            f"CMA-ES vs random search, budget {s['budget']}, popsize {s['popsize']}, "
            f"objective {s['objective']}, holdout {s['holdout']}:"
        )
        print(
            f"  {'seed':>4}  {'cma IS':>10}  {'cma OOS':>10}  {'random IS':>10}  {'random OOS':>10}"
        )
        for r in s["runs"]:
            c, q = r["cma"], r["random"]
            print(
                f"  {r['seed']:>4}  {c['best_score']:>10.1f}  {c['best_oos_score']:>10.1f}  "
                f"{q['best_score']:>10.1f}  {q['best_oos_score']:>10.1f}"
            )
        print(
            f"  CMA-ES better in {s['cma_wins']}/{len(s['runs'])}; mean best "
            f"{s['cma_mean']:.1f} vs {s['random_mean']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
