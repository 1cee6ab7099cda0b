"""Exact decimal-string to fixed-point integer conversion, vectorised through pyarrow.

Prices and sizes arrive as decimal text ("61837.63000000"). Parsing them as floats and
rounding is exact only most of the time; casting the text to a 128-bit decimal and reading
its unscaled integer is exact always, and runs at tens of millions of values a second.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError

MAX_SCALE = 18


def _as_string_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    return values


def infer_scale(values: pa.Array | pa.ChunkedArray) -> int:
    """The number of significant decimal places needed to hold every value exactly."""
    values = _as_string_array(values)
    if len(values) == 0:
        return 0
    if pc.any(pc.match_substring_regex(values, "[eE]")).as_py():
        for scale in range(MAX_SCALE + 1):
            try:
                pc.cast(values, pa.decimal128(38, scale))
                return scale
            except pa.ArrowInvalid:
                continue
        return MAX_SCALE
    frac = pc.extract_regex(values, r"^[^.]*(?:\.(?P<f>\d*?))?0*$")
    digits = pc.utf8_length(pc.struct_field(frac, "f"))
    scale = pc.max(digits).as_py()
    return int(scale or 0)


def _first_bad_row(values: pa.Array, scale: int) -> tuple[int, str, str]:
    """Find the first value that fails conversion (slow path, only taken on error)."""
    for i, v in enumerate(values.to_pylist()):
        if v is None:
            return i, "", "missing value"
        try:
            d = Decimal(v)
        except Exception:
            return i, v, "not a number"
        if not d.is_finite():
            return i, v, "not a finite number"
        if d != d.quantize(Decimal(1).scaleb(-scale)) if scale else d != d.to_integral_value():
            return i, v, f"has more than {scale} decimal places"
    return -1, "", ""


def to_units(
    values: pa.Array | pa.ChunkedArray,
    scale: int,
    *,
    path: str | None = None,
    field: str | None = None,
    row_offset: int = 2,
) -> np.ndarray:
    """Convert decimal text to int64 counts of 10**-scale, exactly.

    Raises DataError naming the first bad row (`row_offset` maps the index to a file line:
    2 for a CSV with a header line).
    """
    values = _as_string_array(values)
    if values.null_count:
        bad = int(np.flatnonzero(np.asarray(values.is_null()))[0])
        raise DataError("missing value", path=path, line=bad + row_offset, field=field)
    try:
        dec = pc.cast(values, pa.decimal128(38, scale))
    except pa.ArrowInvalid as exc:
        i, v, why = _first_bad_row(values, scale)
        if i < 0:
            raise DataError(str(exc), path=path, field=field) from None
        raise DataError(f"{v!r} {why}", path=path, line=i + row_offset, field=field) from None
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)
    lo = words[2 * dec.offset : 2 * (dec.offset + len(dec)) : 2]
    hi = words[2 * dec.offset + 1 : 2 * (dec.offset + len(dec)) : 2]
    # A value fits in int64 when the high word is the sign extension of the low word.
    if not np.array_equal(hi, lo >> 63):
        i = int(np.flatnonzero(hi != (lo >> 63))[0])
        raise DataError(
            f"{values[i].as_py()!r} is too large for a 64-bit fixed-point value",
            path=path,
            line=i + row_offset,
            field=field,
        )
    return lo.copy()


def format_units(units: int, scale: int) -> str:
    """Exact decimal text of `units` * 10**-scale (no float rounding)."""
    if scale == 0:
        return str(int(units))
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(int(units)), 10**scale)
    return f"{sign}{q}.{r:0{scale}d}"


def decimal_scale(value: Decimal) -> int:
    """Decimal places of a Decimal with trailing zeros removed (0.0100 -> 2)."""
    exp = value.normalize().as_tuple().exponent
    return max(0, -int(exp))


def units_to_strings(units: np.ndarray, scale: int) -> pa.Array:
    """Vectorised `format_units`: int64 counts of 10**-scale to exact decimal text."""
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty(2 * len(units), dtype=np.int64)
    words[0::2] = units
    words[1::2] = units >> 63  # sign-extend into the high word of the 128-bit value
    dec = pa.Array.from_buffers(pa.decimal128(38, scale), len(units), [None, pa.py_buffer(words)])
    return pc.cast(dec, pa.string())
