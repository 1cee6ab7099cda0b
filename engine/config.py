"""Engine configuration: latencies, fees, queue model and risk limits, validated in Python."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from engine.codes import QM_PROPORTIONAL, QM_TRADES_ONLY, TS_HALTED, TS_REDUCE_ONLY
from engine.errors import UsageError
from engine.instruments import InstrumentRegistry
from engine.risk_rules import RULE_PARAMS, compile_rule
from engine.state import (
    CF_MAKER_FEE,
    CF_MAX_DRAWDOWN,
    CF_PRICE_BAND,
    CF_RULE_PARAMS,
    CF_TAKER_FEE,
    CI_CANCEL_LATENCY,
    CI_DRAWDOWN_ACTION,
    CI_ENTRY_LATENCY,
    CI_EQUITY_INTERVAL,
    CI_LAYER_LEVELS,
    CI_LAYER_WINDOW,
    CI_LIVE,
    CI_MAX_OPEN_ORDERS,
    CI_QUEUE_MODEL,
    CI_REPORT_LATENCY,
    CI_RULE_ADDR,
    CI_SPOOF_TICKS_AWAY,
    CI_SPOOF_WINDOW,
    CI_SUBMIT_MAX,
    CI_SUBMIT_WINDOW,
    IF_LOT,
    IF_MAX_NOTIONAL,
    IF_MULT,
    IF_TICK,
    MK_MAX_ORDER_QTY,
    MK_MAX_POSITION,
    MK_SPOOF_MIN_QTY,
    EngineState,
)

QUEUE_MODELS = {"trades_only": QM_TRADES_ONLY, "proportional": QM_PROPORTIONAL}
DRAWDOWN_ACTIONS = {"reduce_only": TS_REDUCE_ONLY, "halt": TS_HALTED}


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits and surveillance thresholds (0 switches a rule off)."""

    max_order_qty: int = 0
    """Lots per order."""
    max_position: int = 0
    """Lots per strategy instance and instrument (open orders on the side count)."""
    max_notional: float = 0.0
    """Quote currency per order."""
    max_open_orders: int = 0
    """Live orders per strategy instance."""
    max_submits: int = 0
    """Orders per `submit_window_ns` per instance (flatten and cancels are exempt)."""
    submit_window_ns: int = 1_000_000_000
    price_band: float = 0.0
    """Largest |price - mid| / mid of a limit order (0.05 = 5%)."""
    max_drawdown: float = 0.0
    """Quote currency of drawdown from peak equity that trips `drawdown_action`."""
    drawdown_action: str = "reduce_only"
    spoof_min_qty: int = 0
    """Orders of at least this many lots are watched for spoofing."""
    spoof_window_ns: int = 2_000_000_000
    spoof_ticks_away: int = 5
    layer_levels: int = 0
    """Cancels at this many distinct prices within `layer_window_ns` flag layering."""
    layer_window_ns: int = 1_000_000_000


@dataclass(frozen=True)
class EngineConfig:
    """How the simulated venue and the engine behave."""

    entry_latency_ns: int = 1_000_000
    """From submit to the venue (order entry)."""
    cancel_latency_ns: int | None = None
    """From cancel request to the venue (default: entry latency)."""
    report_latency_ns: int = 1_000_000
    """From the venue's report to the engine (acknowledgement latency)."""
    maker_fee: float = 0.0002
    """Fee rate on notional for maker fills (negative: rebate)."""
    taker_fee: float = 0.0005
    queue_model: str = "trades_only"
    equity_interval_ns: int = 1_000_000_000
    risk: RiskLimits = field(default_factory=RiskLimits)
    max_orders: int = 65536
    """Order pool slots (live orders at once)."""
    heap_capacity: int = 1 << 17
    """Scheduled events in flight at once (orders, cancels and reports on their way)."""
    journal_capacity: int = 1 << 18
    """Journal rows buffered between drains (the loop stops to drain at half)."""
    fills_capacity: int = 1 << 16
    alerts_capacity: int = 1 << 12
    equity_capacity: int = 1 << 14
    live: bool = False
    """Orders go to a real venue through the outbox (engine/live.py), not the simulation."""
    outbox_capacity: int = 4096
    """Requests to the venue adapter buffered between drains (live)."""
    risk_rule: Callable | None = None
    """A user pre-trade rule (engine/risk_rules.py), or None."""
    risk_rule_params: tuple[float, ...] = ()
    """The rule's `params` vector (up to RULE_PARAMS values; the rest are 0)."""

    def capacities(self) -> dict[str, int]:
        """Keyword arguments for engine.state.new_state."""
        return {
            "max_orders": self.max_orders,
            "heap_capacity": self.heap_capacity,
            "journal_capacity": self.journal_capacity,
            "fills_capacity": self.fills_capacity,
            "alerts_capacity": self.alerts_capacity,
            "equity_capacity": self.equity_capacity,
            "outbox_capacity": self.outbox_capacity,
        }

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith("_ns") and v is not None and (not isinstance(v, int) or v < 0):
                raise UsageError(f"{f.name} must be a non-negative integer of ns, got {v!r}")
        if self.queue_model not in QUEUE_MODELS:
            raise UsageError(
                f"queue_model {self.queue_model!r} unknown (known: {', '.join(QUEUE_MODELS)})"
            )
        if self.risk.drawdown_action not in DRAWDOWN_ACTIONS:
            raise UsageError(
                f"drawdown_action {self.risk.drawdown_action!r} unknown "
                f"(known: {', '.join(DRAWDOWN_ACTIONS)})"
            )
        for name in (
            "max_order_qty",
            "max_position",
            "max_open_orders",
            "max_submits",
            "spoof_min_qty",
            "layer_levels",
        ):
            if getattr(self.risk, name) < 0:
                raise UsageError(f"risk.{name} must be >= 0")
        for name, value in self.capacities().items():
            if not isinstance(value, int) or value < 16:
                raise UsageError(f"{name} must be an integer of at least 16, got {value!r}")
        if len(self.risk_rule_params) > RULE_PARAMS:
            raise UsageError(f"risk_rule_params holds at most {RULE_PARAMS} values")
        if self.risk_rule is not None and not callable(self.risk_rule):
            raise UsageError(f"risk_rule must be a function, got {self.risk_rule!r}")
        if self.risk.max_submits > 64:
            raise UsageError("risk.max_submits above 64 per window is not supported")

    def with_overrides(self, **kw: Any) -> EngineConfig:
        """A copy with some fields replaced (validated)."""
        from dataclasses import replace

        return replace(self, **kw)


def configure(st: EngineState, cfg: EngineConfig, instruments: InstrumentRegistry) -> None:
    """Write a config and instrument metadata into a fresh state's arrays."""
    ci, cf = st.ctl, st.cfg
    ci[CI_ENTRY_LATENCY] = cfg.entry_latency_ns
    ci[CI_CANCEL_LATENCY] = (
        cfg.entry_latency_ns if cfg.cancel_latency_ns is None else cfg.cancel_latency_ns
    )
    ci[CI_REPORT_LATENCY] = cfg.report_latency_ns
    ci[CI_QUEUE_MODEL] = QUEUE_MODELS[cfg.queue_model]
    ci[CI_EQUITY_INTERVAL] = cfg.equity_interval_ns
    r = cfg.risk
    ci[CI_SPOOF_WINDOW] = r.spoof_window_ns
    ci[CI_SPOOF_TICKS_AWAY] = r.spoof_ticks_away
    ci[CI_LAYER_LEVELS] = r.layer_levels
    ci[CI_LAYER_WINDOW] = r.layer_window_ns
    ci[CI_SUBMIT_WINDOW] = r.submit_window_ns
    ci[CI_SUBMIT_MAX] = r.max_submits
    ci[CI_MAX_OPEN_ORDERS] = r.max_open_orders
    ci[CI_DRAWDOWN_ACTION] = DRAWDOWN_ACTIONS[r.drawdown_action]
    ci[CI_LIVE] = 1 if cfg.live else 0
    cf[CF_MAKER_FEE] = cfg.maker_fee
    cf[CF_TAKER_FEE] = cfg.taker_fee
    cf[CF_PRICE_BAND] = r.price_band
    cf[CF_MAX_DRAWDOWN] = r.max_drawdown
    ci[CI_RULE_ADDR] = compile_rule(cfg.risk_rule) if cfg.risk_rule is not None else 0
    cf[CF_RULE_PARAMS:] = 0.0
    cf[CF_RULE_PARAMS : CF_RULE_PARAMS + len(cfg.risk_rule_params)] = cfg.risk_rule_params
    for i, inst in enumerate(instruments):
        st.instf[i, IF_TICK] = float(inst.tick_size)
        st.instf[i, IF_LOT] = float(inst.lot_size)
        st.instf[i, IF_MULT] = float(inst.contract_multiplier)
        st.instf[i, IF_MAX_NOTIONAL] = r.max_notional
        st.mk[i, MK_MAX_ORDER_QTY] = r.max_order_qty
        st.mk[i, MK_MAX_POSITION] = r.max_position
        st.mk[i, MK_SPOOF_MIN_QTY] = r.spoof_min_qty
