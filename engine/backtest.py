"""Headless backtest: run a strategy over a stream, report what happened, write the tables.

    from engine.backtest import run_backtest
    result = run_backtest(stream, MarketMaker, [{"half_spread": 1}], EngineConfig(),
                          capital=100_000.0, out_dir="out/")
    result.report.total_pnl, result.report.sharpe, result.files["fills"]

`cockpit backtest` (cockpit/cli_backtest.py) is this plus argument parsing and printing.

The report (`BacktestReport`, all money in the quote currency of the instruments, summed
over every strategy instance and the manual row):
- realized_pnl, unrealized_pnl (open positions at the final mark: the mid, else the quotes,
  else the last trade), fees (negative when rebates dominate), total_pnl = realized +
  unrealized - fees (net of fees; equals the last point of the equity curve).
- return_frac = total_pnl / capital, where `capital` is a notional the user chooses: the
  engine does not model cash, so this is the return on the capital one would set aside.
- sharpe: annualised Sharpe ratio of the equity curve. The engine samples equity every
  `EngineConfig.equity_interval_ns` of engine time (when the clock passes each boundary, so
  quiet stretches leave gaps); the curve, starting at 0 at the first event, is resampled to a
  uniform grid of `sample_ns` (default the equity interval) carrying the last value forward;
  per-period returns are r_k = (E_k - E_{k-1}) / capital (arithmetic, on fixed capital, no
  compounding: equity is PnL, not a balance); sharpe = mean(r) / std(r, ddof=1) *
  sqrt(periods per year), with a year of 365.25 days of 24 hours (crypto venues never
  close), so with 1 s sampling the factor is sqrt(31,557,600). No risk-free rate. None when
  there are fewer than two returns or they do not vary.
- max_drawdown: largest fall of the equity curve (its samples, from the starting 0) below
  its running peak, in currency; max_drawdown_frac divides each fall by capital + peak.
- orders: orders that passed pre-trade risk and were sent; orders_denied: refused by risk or
  as malformed; orders_rejected: refused by the venue (post-only crossing, ...); cancels:
  cancel requests sent.
- fills: fill rows (one order can fill several times); orders_filled: orders with at least
  one fill; fill_ratio = orders_filled / orders; lots_fill_ratio = filled lots / lots sent.
- order_to_trade: order messages per fill, (orders + cancels) / fills, the usual regulatory
  measure (MiFID II RTS 9 counts entries, amendments and cancels against transactions).
- alerts: count per alert name; rejections: denied, rejected and expired orders per reason.
- events, data_events: events processed (data plus the engine's own scheduled ones) and data
  events; wall_seconds, events_per_second: wall time of the loop only (Engine.run, without
  loading the data, compiling, on_start/on_stop, the report or the files) and events over
  it; compile_seconds: building the engine and the loop's first call, one event long, which
  compiles the loop or loads it from numba's disk cache.

Files written by `write_outputs(engine, out_dir)` (Parquet, zstd; `*_name` columns hold the
names of the integer codes from engine/codes.py, dictionary-encoded):
- journal.parquet: the OMS audit journal, one row per transition: ts (engine ns), oid, cid,
  inst, symbol, strat (-1 manual), from_state, to_state, reason, price (ticks), qty (lots),
  from_state_name, to_state_name, reason_name.
- fills.parquet: ts (venue ns), oid, cid, inst, symbol, strat, side (1 buy, -1 sell), liq
  (0 maker, 1 taker), price (ticks), qty (lots), fee (currency), side_name, liq_name,
  price_value and qty_value (price and quantity as decimals, float64, for reading only).
- equity.parquet: ts, equity (currency, all rows), position (net lots of instrument 0, as the
  engine samples it), drawdown (running peak minus equity).
- alerts.parquet: ts, code, severity, reason, oid, inst, strat, value, code_name,
  severity_name, reason_name.
- instances.parquet: one row per strategy instance: instance, its parameters, realized,
  unrealized, fees, equity, max_drawdown (the engine's own, checked at each fill), enabled.
- report.json: the report as JSON.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from engine.codes import (
    ALERT_NAMES,
    REASON_NAMES,
    SEVERITY_NAMES,
    ST_DENIED,
    ST_EXPIRED,
    ST_REJECTED,
    ST_SUBMITTED,
    STATE_NAMES,
)
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.errors import UsageError
from engine.runner import Engine
from engine.state import (
    IF_LOT,
    IF_MULT,
    IF_TICK,
    MK_MARK_X2,
    PF_COST,
    PF_FEES,
    PF_REALIZED,
    PI_POS,
    PI_VOLUME,
    RF_MAX_DD,
    RI_ENABLED,
)

DEFAULT_CAPITAL: Final = 100_000.0
"""Notional capital of the return, quote currency."""
SECONDS_PER_YEAR: Final = 365.25 * 86_400.0
"""The Sharpe ratio's year: every day, all day (crypto venues never close)."""
NS_PER_YEAR: Final = SECONDS_PER_YEAR * 1e9

SIDE_NAMES: Final = {1: "buy", -1: "sell"}
LIQUIDITY_NAMES: Final = {0: "maker", 1: "taker"}
OUTPUT_FILES: Final = (
    "journal.parquet",
    "fills.parquet",
    "equity.parquet",
    "alerts.parquet",
    "instances.parquet",
    "report.json",
)


# ------------------------------------------------------------------------------ metrics


def equity_on_grid(
    ts: np.ndarray, equity: np.ndarray, start_ns: int, end_ns: int, step_ns: int
) -> np.ndarray:
    """Equity at start_ns, start_ns + step_ns, ... <= end_ns: the last sample at or before.

    Before the first sample the equity is 0 (nothing traded yet). `ts` must be sorted.
    """
    if step_ns <= 0:
        raise UsageError(f"sample step must be a positive number of ns, got {step_ns}")
    if end_ns < start_ns:
        return np.zeros(0, np.float64)
    grid = start_ns + step_ns * np.arange((end_ns - start_ns) // step_ns + 1, dtype=np.int64)
    k = np.searchsorted(np.asarray(ts, np.int64), grid, side="right") - 1
    values = np.asarray(equity, np.float64)
    return np.where(k >= 0, values[np.maximum(k, 0)] if len(values) else 0.0, 0.0)


def sharpe_ratio(grid_equity: np.ndarray, capital: float, step_ns: int) -> float | None:
    """Annualised Sharpe ratio of equity sampled every `step_ns` (see the module docstring).

    Returns None when there are fewer than two returns or all returns are equal.
    """
    if capital <= 0:
        raise UsageError(f"capital must be positive, got {capital}")
    r = np.diff(np.asarray(grid_equity, np.float64)) / capital
    if len(r) < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if not sd > 0.0 or not math.isfinite(sd):
        return None
    return float(np.mean(r)) / sd * math.sqrt(NS_PER_YEAR / step_ns)


def max_drawdown(equity: np.ndarray, capital: float) -> tuple[float, float]:
    """(largest fall below the running peak, largest fall / (capital + peak)); 0s if empty.

    The peak starts at the first value: prepend 0 for a curve that starts flat.
    """
    e = np.asarray(equity, np.float64)
    if len(e) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(e)
    fall = peak - e
    base = capital + peak
    frac = np.divide(fall, base, out=np.zeros_like(fall), where=base > 0)
    return float(fall.max()), float(frac.max())


# ------------------------------------------------------------------------------- report


@dataclass
class BacktestReport:
    """What a backtest did (see the module docstring for every definition)."""

    strategy: str
    instances: int
    capital: float
    start_ns: int
    end_ns: int
    duration_s: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    total_pnl: float
    return_frac: float
    sharpe: float | None
    sharpe_sample_ns: int
    max_drawdown: float
    max_drawdown_frac: float
    orders: int
    orders_denied: int
    orders_rejected: int
    cancels: int
    fills: int
    maker_fills: int
    taker_fills: int
    orders_filled: int
    fill_ratio: float | None
    lots_sent: int
    lots_filled: int
    lots_fill_ratio: float | None
    order_to_trade: float | None
    invalid_transitions: int
    alerts: dict[str, int]
    rejections: dict[str, int]
    events: int
    data_events: int
    wall_seconds: float
    events_per_second: float | None
    compile_seconds: float
    instruments: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return asdict(self)


def _money_factor(st) -> np.ndarray:
    """Quote currency per tick*lot of each instrument."""
    f = st.instf
    return f[:, IF_TICK] * f[:, IF_LOT] * f[:, IF_MULT]


def unrealized_by_row(engine: Engine) -> np.ndarray:
    """Open PnL [rows, instruments] at the current mark (engine.portfolio.unrealized)."""
    st = engine.state
    pos = st.pi[:, :, PI_POS].astype(np.float64)
    mark_x2 = st.mk[:, MK_MARK_X2].astype(np.float64)
    ticks_lots = mark_x2[None, :] * 0.5 * pos - st.pf[:, :, PF_COST]
    out = ticks_lots * _money_factor(st)[None, :]
    out[(st.pi[:, :, PI_POS] == 0) | (st.mk[:, MK_MARK_X2] == 0)[None, :]] = 0.0
    return out


def _counts(codes: np.ndarray, names: dict[int, str]) -> dict[str, int]:
    values, counts = np.unique(np.asarray(codes, np.int64), return_counts=True)
    return {names.get(int(v), str(int(v))): int(c) for v, c in zip(values, counts, strict=True)}


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def compute_report(
    engine: Engine,
    *,
    capital: float = DEFAULT_CAPITAL,
    sample_ns: int | None = None,
    compile_seconds: float = 0.0,
    loop: tuple[int, float] | None = None,
) -> BacktestReport:
    """The report of a finished (or paused) run; reads the engine, changes nothing.

    `loop` is (events, wall seconds) of the timed part of the run, when the caller kept the
    loop's first (compiling) call out of it; default: all of Engine.run.
    """
    if not capital > 0:
        raise UsageError(f"capital must be positive, got {capital}")
    st = engine.state
    journal = engine.journal()
    fills = engine.fills()
    alerts = engine.alerts()
    curve = engine.equity_curve()
    counters = engine.counters()

    realized = float(st.pf[:, :, PF_REALIZED].sum())
    fees = float(st.pf[:, :, PF_FEES].sum())
    unreal_rows = unrealized_by_row(engine)
    unrealized = float(unreal_rows.sum())
    total = realized + unrealized - fees

    ev = engine.events
    start_ns = int(ev["ts_local"][0]) if len(ev) else 0
    end_ns = max(engine.now, start_ns)
    step = sample_ns or engine.config.equity_interval_ns
    ts = np.concatenate([[start_ns], curve["ts"]]).astype(np.int64)
    eq = np.concatenate([[0.0], curve["equity"]])
    sharpe = None
    if step and step > 0:
        sharpe = sharpe_ratio(equity_on_grid(ts, eq, start_ns, end_ns, step), capital, step)
    dd, dd_frac = max_drawdown(eq, capital)

    to_state = journal["to_state"]
    sent = to_state == ST_SUBMITTED
    lots_sent = int(journal["qty"][sent].sum())
    lots_filled = int(fills["qty"].sum())
    orders = int(counters.get("orders_submitted", int(sent.sum())))
    cancels = int(counters.get("cancels", 0))
    n_fills = len(fills["qty"])
    orders_filled = len(np.unique(fills["cid"]))
    ended = np.isin(to_state, (ST_DENIED, ST_REJECTED, ST_EXPIRED))

    mf = _money_factor(st)
    instruments = []
    for i, inst in enumerate(engine.stream.instruments):
        pos = int(st.pi[:, i, PI_POS].sum())
        mark_x2 = int(st.mk[i, MK_MARK_X2])
        instruments.append(
            {
                "id": i,
                "symbol": inst.symbol,
                "venue": inst.venue,
                "position_lots": pos,
                "position": str(inst.lot_size * pos),
                "volume_lots": int(st.pi[:, i, PI_VOLUME].sum()),
                "mark": float(mark_x2) * 0.5 * float(inst.tick_size) if mark_x2 else None,
                "realized_pnl": float(st.pf[:, i, PF_REALIZED].sum()),
                "unrealized_pnl": float(unreal_rows[:, i].sum()),
                "fees": float(st.pf[:, i, PF_FEES].sum()),
                "money_per_tick_lot": float(mf[i]),
            }
        )
    events = engine.events_processed
    loop_events, wall = loop if loop is not None else (events, float(engine.wall_seconds))
    return BacktestReport(
        strategy=engine.strategy_cls.__name__,
        instances=len(engine.rows),
        capital=float(capital),
        start_ns=start_ns,
        end_ns=end_ns,
        duration_s=(end_ns - start_ns) / 1e9,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees=fees,
        total_pnl=total,
        return_frac=total / capital,
        sharpe=sharpe,
        sharpe_sample_ns=int(step or 0),
        max_drawdown=dd,
        max_drawdown_frac=dd_frac,
        orders=orders,
        orders_denied=int(counters.get("orders_denied", 0)),
        orders_rejected=int(counters.get("orders_rejected", 0)),
        cancels=cancels,
        fills=n_fills,
        maker_fills=int(counters.get("maker_fills", 0)),
        taker_fills=int(counters.get("taker_fills", 0)),
        orders_filled=orders_filled,
        fill_ratio=_ratio(orders_filled, orders),
        lots_sent=lots_sent,
        lots_filled=lots_filled,
        lots_fill_ratio=_ratio(lots_filled, lots_sent),
        order_to_trade=_ratio(orders + cancels, n_fills),
        invalid_transitions=int(counters.get("invalid_transitions", 0)),
        alerts=_counts(alerts["code"], ALERT_NAMES),
        rejections=_counts(journal["reason"][ended], REASON_NAMES),
        events=events,
        data_events=engine.cursor,
        wall_seconds=wall,
        events_per_second=loop_events / wall if wall > 0 else None,
        compile_seconds=float(compile_seconds),
        instruments=instruments,
        faults=[f"instance {f.instance} at {f.hook_time_ns}: {f.message}" for f in engine.faults],
    )


# -------------------------------------------------------------------------------- files


def _names(codes: np.ndarray, names: dict[int, str]):
    """A dictionary-encoded Arrow column of the names of integer codes."""
    import pyarrow as pa

    codes = np.asarray(codes, np.int64)
    uniq, idx = np.unique(codes, return_inverse=True)
    labels = [names.get(int(c), str(int(c))) for c in uniq]
    return pa.DictionaryArray.from_arrays(
        pa.array(idx.astype(np.int32), pa.int32()), pa.array(labels, pa.string())
    )


def _symbols(engine: Engine, inst: np.ndarray):
    names = {i: ins.symbol for i, ins in enumerate(engine.stream.instruments)}
    return _names(inst, names)


def tables(engine: Engine) -> dict[str, Any]:
    """The journal, fills, equity curve, alerts and instances as pyarrow Tables."""
    import pyarrow as pa

    j = engine.journal()
    journal = pa.table(
        {
            **{k: j[k] for k in ("ts", "oid", "cid", "inst")},
            "symbol": _symbols(engine, j["inst"]),
            **{k: j[k] for k in ("strat", "from_state", "to_state", "reason", "price", "qty")},
            "from_state_name": _names(j["from_state"], STATE_NAMES),
            "to_state_name": _names(j["to_state"], STATE_NAMES),
            "reason_name": _names(j["reason"], REASON_NAMES),
        }
    )

    f = engine.fills()
    finst = f["inst"]
    tick = engine.state.instf[:, IF_TICK]
    lot = engine.state.instf[:, IF_LOT]
    fills = pa.table(
        {
            **{k: f[k] for k in ("ts", "oid", "cid", "inst")},
            "symbol": _symbols(engine, finst),
            **{k: f[k] for k in ("strat", "side", "liq", "price", "qty", "fee")},
            "side_name": _names(f["side"], SIDE_NAMES),
            "liq_name": _names(f["liq"], LIQUIDITY_NAMES),
            "price_value": f["price"] * tick[finst] if len(finst) else np.zeros(0),
            "qty_value": f["qty"] * lot[finst] if len(finst) else np.zeros(0),
        }
    )

    c = engine.equity_curve()
    peak = np.maximum.accumulate(np.maximum(c["equity"], 0.0)) if len(c["equity"]) else c["equity"]
    equity = pa.table(
        {
            "ts": c["ts"],
            "equity": c["equity"],
            "position": c["position"],
            "drawdown": peak - c["equity"],
        }
    )

    a = engine.alerts()
    alerts = pa.table(
        {
            **{k: a[k] for k in ("ts", "code", "severity", "reason", "oid", "inst", "strat")},
            "value": a["value"],
            "code_name": _names(a["code"], ALERT_NAMES),
            "severity_name": _names(a["severity"], SEVERITY_NAMES),
            "reason_name": _names(a["reason"], REASON_NAMES),
        }
    )

    st = engine.state
    n = len(engine.rows)
    unreal = unrealized_by_row(engine)[:n].sum(axis=1)
    realized = st.pf[:n, :, PF_REALIZED].sum(axis=1)
    fees = st.pf[:n, :, PF_FEES].sum(axis=1)
    params = getattr(engine.strategy_cls, "params", {}) or {}
    cols: dict[str, Any] = {"instance": np.arange(n, dtype=np.int64)}
    for name in params:
        if name in engine.rows.dtype.names and not engine.rows.dtype[name].shape:
            cols[name] = np.array(engine.rows[name])
    cols.update(
        realized=realized,
        unrealized=unreal,
        fees=fees,
        equity=realized + unreal - fees,
        max_drawdown=st.rf[:n, RF_MAX_DD].copy(),
        enabled=st.ri[:n, RI_ENABLED] != 0,
    )
    instances = pa.table(cols)
    return {
        "journal": journal,
        "fills": fills,
        "equity": equity,
        "alerts": alerts,
        "instances": instances,
    }


def write_outputs(
    engine: Engine, out_dir: str | Path, report: BacktestReport | None = None
) -> dict[str, Path]:
    """Write the tables (and the report) into `out_dir`; returns name -> path."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, table in tables(engine).items():
        path = out / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        files[name] = path
    if report is not None:
        path = out / "report.json"
        path.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
        files["report"] = path
    return files


# ---------------------------------------------------------------------------------- run


def coerce_params(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """Parameter values for `cls` from text or JSON values, checked against its `params`.

    Strings are parsed by the field's type (int: "1_000" or "1e3" when whole; float; bool:
    true/false/1/0/yes/no/on/off). Raises UsageError naming the parameter.
    """
    params = dict(getattr(cls, "params", {}) or {})
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in params:
            known = ", ".join(params) or "none"
            raise UsageError(f"{cls.__name__}: unknown parameter {key!r} (known: {known})")
        default = params[key]
        out[key] = _coerce(cls.__name__, key, default, value)
    return out


def _coerce(cls_name: str, key: str, default: Any, value: Any) -> Any:
    def bad() -> UsageError:
        kind = type(default).__name__
        return UsageError(f"{cls_name}: parameter {key!r} expects {kind}, got {value!r}")

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise bad()
    if isinstance(default, (int, np.integer)):
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            try:
                return int(text)
            except ValueError:
                pass
            try:
                value = float(text)  # "1e9" for a whole number of ns
            except ValueError:
                raise bad() from None
        if isinstance(value, (float, np.floating)) and math.isfinite(value):
            if float(value).is_integer():
                return int(value)
        raise bad()
    if isinstance(default, (float, np.floating)):
        if isinstance(value, bool):
            raise bad()
        try:
            number = float(value.strip().replace("_", "") if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(number):
            raise bad()
        return number
    raise bad()


@dataclass
class BacktestResult:
    """A finished backtest: the engine (for its tables), the report, the files written."""

    engine: Engine
    report: BacktestReport
    files: dict[str, Path] = field(default_factory=dict)


def run_backtest(
    stream: EventStream,
    strategy_cls: type,
    instances: dict[str, Any] | list[dict[str, Any]] | None = None,
    config: EngineConfig | None = None,
    *,
    capital: float = DEFAULT_CAPITAL,
    sample_ns: int | None = None,
    out_dir: str | Path | None = None,
) -> BacktestResult:
    """Run `strategy_cls` over `stream` to the end and report (and write files to out_dir).

    Args:
        instances: one parameter dict (one instance) or a list of them; values may be text
            (parsed by coerce_params). None: one instance with the defaults.
        capital: notional capital of the return and the Sharpe ratio, quote currency.
        sample_ns: grid of the Sharpe ratio (default: config.equity_interval_ns).
        out_dir: when given, the files described in the module docstring are written there.

    Raises:
        UsageError: bad parameters or capital; StrategyError: the strategy does not compile.
    """
    if not capital > 0 or not math.isfinite(capital):
        raise UsageError(f"capital must be a positive number, got {capital}")
    if sample_ns is not None and sample_ns <= 0:
        raise UsageError(f"sample_ns must be positive, got {sample_ns}")
    if isinstance(instances, dict):
        instances = [instances]
    overrides = [coerce_params(strategy_cls, p) for p in (instances or [{}])]
    t0 = time.perf_counter()
    engine = Engine(stream, strategy_cls, overrides, config or EngineConfig())
    engine.start()
    # The loop is compiled (or loaded from numba's cache) on its first call: make that call
    # one event long and keep it out of the events/s figure.
    engine.run(max_events=1)
    compile_seconds = time.perf_counter() - t0
    warm_wall, warm_events = engine.wall_seconds, engine.events_processed
    engine.run()
    loop_wall = engine.wall_seconds - warm_wall
    loop_events = engine.events_processed - warm_events
    engine.finish()
    report = compute_report(
        engine,
        capital=capital,
        sample_ns=sample_ns,
        compile_seconds=compile_seconds,
        loop=(loop_events, loop_wall),
    )
    files = write_outputs(engine, out_dir, report) if out_dir is not None else {}
    return BacktestResult(engine=engine, report=report, files=files)
