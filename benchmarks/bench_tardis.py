"""Measure load_tardis throughput on a large generated Tardis CSV.

What it measures: rows per second of `adapters.tardis.load_tardis` (read, exact decimal
conversion, tick inference, validation, event building), median of several runs over one
seeded file written once into a temporary directory. The number that matters: >= 2M rows/s
on a plain trades or incremental_book_L2 file (a day of Binance futures BTCUSDT trades is
a few million rows: loading it should take about a second).

    .venv/bin/python benchmarks/bench_tardis.py [--type trades|incremental_book_L2]
                                                [--rows 2000000] [--runs 5] [--gzip]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from adapters.tardis import load_tardis

TARGET_ROWS_PER_S = 2_000_000


def _decimal_text(units: np.ndarray, scale: int) -> pa.Array:
    """Decimal text of units * 10**-scale without trailing zeros, like Tardis writes it."""
    text = pc.cast(pa.array(units, pa.int64()), pa.string())
    text = pc.utf8_lpad(text, width=scale + 1, padding="0")  # 132 -> 0.132, 0 -> 0.000
    whole = pc.utf8_slice_codeunits(text, 0, -scale)
    frac = pc.utf8_slice_codeunits(text, -scale)
    frac = pc.utf8_rtrim(frac, characters="0")
    joined = pc.binary_join_element_wise(whole, frac, ".")
    return pc.utf8_rtrim(joined, characters=".")


def generate(path: Path, data_type: str, rows: int, seed: int = 7) -> None:
    """Write a seeded Tardis CSV of `rows` rows (BTCUSDT-like prices and sizes)."""
    rng = np.random.default_rng(seed)
    ts = 1_582_329_600_000_000 + np.cumsum(rng.integers(0, 2_000, rows))
    if data_type == "incremental_book_L2":
        # Messages of 1-8 rows share a local timestamp, as they do in real captures.
        msg = np.cumsum(rng.random(rows) < 0.3)
        local = ts[msg] + 150_000
        exch = local - 100_000
    else:
        local = ts + rng.integers(100_000, 300_000, rows)
        local = np.maximum.accumulate(local)
        exch = ts
    price = 968_200 + np.cumsum(rng.integers(-3, 4, rows))  # cents
    amount = rng.integers(1, 5_000, rows)  # thousandths
    cols: dict[str, pa.Array] = {
        "exchange": pa.array(np.full(rows, "binance-futures", dtype=object)),
        "symbol": pa.array(np.full(rows, "BTCUSDT", dtype=object)),
        "timestamp": pa.array(exch),
        "local_timestamp": pa.array(local),
    }
    if data_type == "trades":
        cols["id"] = pa.array(np.arange(42_000_000, 42_000_000 + rows))
        cols["side"] = pa.array(np.where(rng.random(rows) < 0.5, "buy", "sell"))
    else:
        snap = np.zeros(rows, dtype=bool)
        snap[: min(rows, 1000)] = True
        local[: min(rows, 1000)] = local[0]
        cols["local_timestamp"] = pa.array(local)
        cols["is_snapshot"] = pa.array(np.where(snap, "true", "false"))
        cols["side"] = pa.array(np.where(rng.random(rows) < 0.5, "bid", "ask"))
        amount = np.where(rng.random(rows) < 0.2, 0, amount)
    cols["price"] = _decimal_text(price, 2)
    cols["amount"] = _decimal_text(amount, 3)
    pcsv.write_csv(pa.table(cols), path, write_options=pcsv.WriteOptions(quoting_style="none"))


def main() -> None:
    """Generate the file once, load it `--runs` times, print the median rows/s."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", default="trades", choices=["trades", "incremental_book_L2"])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gzip", action="store_true", help="also measure the gzip file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench_{args.type}.csv"
        t0 = time.perf_counter()
        generate(path, args.type, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        files = [path]
        if args.gzip:
            gz = path.with_suffix(".csv.gz")
            with open(path, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
            files.append(gz)
        load_tardis(files[0])  # warm-up: imports, page cache
        for f in files:
            times, cpu = [], []
            for _ in range(args.runs):
                t, c = time.perf_counter(), time.process_time()
                stream = load_tardis(f)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            med = statistics.median(times)
            rate = args.rows / med
            verdict = "ok" if rate >= TARGET_ROWS_PER_S else "BELOW TARGET"
            # CPU seconds (all threads) show whether a slow wall time was contention.
            print(
                f"{f.name}: {len(stream):,} events, median {med * 1e3:.0f} ms wall "
                f"({statistics.median(cpu) * 1e3:.0f} ms CPU) over {args.runs} runs -> "
                f"{rate / 1e6:.2f}M rows/s (target {TARGET_ROWS_PER_S / 1e6:.0f}M: {verdict}; "
                f"{os.cpu_count()} cores)"
            )


if __name__ == "__main__":
    main()
