"""Instrument metadata: symbol, venue, tick and lot size, and exact price/size conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa

from engine.decimals import decimal_scale, format_units, infer_scale, to_units
from engine.errors import DataError, UsageError


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument; prices are integer ticks, sizes integer lots."""

    symbol: str
    venue: str
    tick_size: Decimal
    lot_size: Decimal
    kind: str = "spot"
    """`spot`, `perpetual` or `future`: informs fees and margin, not the book."""
    contract_multiplier: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                try:
                    value = Decimal(str(value))
                except InvalidOperation:
                    raise UsageError(f"{self.symbol}: {name} {value!r} is not a number") from None
                object.__setattr__(self, name, value)
            if not value.is_finite() or value <= 0:
                raise UsageError(f"{self.symbol}: {name} must be positive, got {value}")

    @property
    def key(self) -> tuple[str, str]:
        """(venue, symbol): what identifies an instrument across files."""
        return (self.venue, self.symbol)

    @property
    def price_scale(self) -> int:
        """Decimal places of the tick size."""
        return decimal_scale(self.tick_size)

    @property
    def size_scale(self) -> int:
        """Decimal places of the lot size."""
        return decimal_scale(self.lot_size)

    def _ticks(
        self, units: np.ndarray, step: Decimal, scale: int, what: str, **where
    ) -> np.ndarray:
        step_units = int(step.scaleb(scale))
        if step_units == 1:
            return units
        q, r = np.divmod(units, step_units)
        if r.any():
            i = int(np.flatnonzero(r)[0])
            raise DataError(
                f"{format_units(int(units[i]), scale)} is not a multiple of the {what} {step}",
                line=i + where.pop("row_offset", 2),
                **where,
            )
        return q

    def prices_to_ticks(self, values: pa.Array, **where) -> np.ndarray:
        """Decimal price text to int64 ticks; DataError names the first off-grid row."""
        scale = self.price_scale
        units = to_units(values, scale, **where)
        return self._ticks(units, self.tick_size, scale, "tick size", **where)

    def sizes_to_lots(self, values: pa.Array, **where) -> np.ndarray:
        """Decimal size text to int64 lots; DataError names the first off-grid row."""
        scale = self.size_scale
        units = to_units(values, scale, **where)
        return self._ticks(units, self.lot_size, scale, "lot size", **where)

    def price_to_ticks(self, price: str | Decimal | int) -> int:
        """One price to ticks, exactly; raises DataError when it is off the tick grid."""
        ticks, rem = divmod(Decimal(str(price)), self.tick_size)
        if rem != 0:
            raise DataError(f"price {price} is not a multiple of the tick size {self.tick_size}")
        return int(ticks)

    def size_to_lots(self, size: str | Decimal | int) -> int:
        """One size to lots, exactly; raises DataError when it is off the lot grid."""
        lots, rem = divmod(Decimal(str(size)), self.lot_size)
        if rem != 0:
            raise DataError(f"size {size} is not a multiple of the lot size {self.lot_size}")
        return int(lots)

    def ticks_to_price(self, ticks: int) -> Decimal:
        """Ticks to an exact Decimal price."""
        return self.tick_size * int(ticks)

    def lots_to_size(self, lots: int) -> Decimal:
        """Lots to an exact Decimal size."""
        return self.lot_size * int(lots)

    def format_price(self, ticks: int) -> str:
        """Price text with exactly the tick size's decimal places."""
        scale = self.price_scale
        return format_units(int(ticks) * int(self.tick_size.scaleb(scale)), scale)

    def format_size(self, lots: int) -> str:
        """Size text with exactly the lot size's decimal places."""
        scale = self.size_scale
        return format_units(int(lots) * int(self.lot_size.scaleb(scale)), scale)

    def to_dict(self) -> dict:
        """JSON-ready form (decimals as text) for file headers."""
        return {
            "symbol": self.symbol,
            "venue": self.venue,
            "tick_size": str(self.tick_size),
            "lot_size": str(self.lot_size),
            "kind": self.kind,
            "contract_multiplier": str(self.contract_multiplier),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Instrument:
        """Inverse of `to_dict`."""
        try:
            return cls(
                symbol=str(d["symbol"]),
                venue=str(d["venue"]),
                tick_size=Decimal(d["tick_size"]),
                lot_size=Decimal(d["lot_size"]),
                kind=str(d.get("kind", "spot")),
                contract_multiplier=Decimal(d.get("contract_multiplier", "1")),
            )
        except (KeyError, InvalidOperation, TypeError) as exc:
            raise DataError(f"bad instrument record {d!r}: {exc}") from None


def infer_step(*columns: pa.Array) -> Decimal:
    """The finest decimal step that holds every value of the columns exactly (e.g. 0.01)."""
    scale = max((infer_scale(c) for c in columns if len(c)), default=0)
    return Decimal(1).scaleb(-scale)


@dataclass
class InstrumentRegistry:
    """Instruments of one stream, numbered 0..n-1 in order of registration."""

    instruments: list[Instrument] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.instruments)

    def __iter__(self):
        return iter(self.instruments)

    def __getitem__(self, iid: int) -> Instrument:
        return self.instruments[iid]

    def add(self, inst: Instrument) -> int:
        """Register an instrument (idempotent for an identical one) and return its id."""
        for i, known in enumerate(self.instruments):
            if known.key == inst.key:
                if known != inst:
                    raise DataError(
                        f"instrument {inst.venue}:{inst.symbol} registered twice with different "
                        f"metadata ({known.tick_size}/{known.lot_size} vs "
                        f"{inst.tick_size}/{inst.lot_size})"
                    )
                return i
        self.instruments.append(inst)
        return len(self.instruments) - 1

    def id_of(self, venue: str, symbol: str) -> int:
        """The id of a registered instrument; UsageError if unknown."""
        for i, known in enumerate(self.instruments):
            if known.key == (venue, symbol):
                return i
        raise UsageError(f"unknown instrument {venue}:{symbol}")

    def to_list(self) -> list[dict]:
        """JSON-ready list for file headers."""
        return [i.to_dict() for i in self.instruments]

    @classmethod
    def from_list(cls, items: list[dict]) -> InstrumentRegistry:
        """Inverse of `to_list`."""
        return cls([Instrument.from_dict(d) for d in items])
