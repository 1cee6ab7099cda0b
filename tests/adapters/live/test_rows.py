"""Venue decimal text to ticks and lots: the small-batch fast path agrees with the exact
Arrow conversion on every value, errors included."""

from __future__ import annotations

import random
from decimal import Decimal

import pyarrow as pa
import pytest

from adapters.live import rows
from engine.errors import DataError
from engine.instruments import Instrument

INST = Instrument("BTCUSDT", "binance", Decimal("0.01"), Decimal("0.00001"))


def _arrow(values: list[str]) -> list[int] | str:
    try:
        return INST.prices_to_ticks(pa.array(values, pa.string()), field="price").tolist()
    except DataError as exc:
        return str(exc)


def _fast(values: list[str]) -> list[int] | str:
    try:
        return rows.prices_to_ticks(INST, values).tolist()
    except DataError as exc:
        return str(exc)


def test_typical_binance_text_converts_exactly() -> None:
    assert rows.prices_to_ticks(INST, ["61234.56000000", "0.01", "7"]).tolist() == [
        6123456,
        1,
        700,
    ]
    assert rows.sizes_to_lots(INST, ["0.00120000", "3"]).tolist() == [120, 300000]


@pytest.mark.parametrize(
    "text", ["61234.565", "-1.00", "1e3", " 1.00", "1_000.00", "", "abc", "1.2.3", "٣.00"]
)
def test_anything_unusual_gets_the_exact_paths_answer(text: str) -> None:
    assert _fast([text]) == _arrow([text])


def test_random_values_agree_with_arrow() -> None:
    r = random.Random(7)
    for _ in range(3000):
        v = f"{r.randint(0, 99999)}.{r.randint(0, 99999999):08d}"[: r.randint(1, 14)]
        assert _fast([v]) == _arrow([v]), v


def test_off_grid_price_is_a_data_error_naming_the_value() -> None:
    with pytest.raises(DataError, match="61234.565"):
        rows.prices_to_ticks(INST, ["61234.56", "61234.565"])


def test_large_batches_take_arrow_and_agree() -> None:
    values = [f"{60000 + i}.{i % 100:02d}" for i in range(rows.SMALL * 3)]
    assert _fast(values) == _arrow(values)
