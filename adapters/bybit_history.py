"""Bybit order-book history files (zip of JSON lines) converted into engine events.

Bybit publishes a day of one symbol's order book as a zip (e.g.
`2024-01-01_BTCUSDT_ob500.data.zip`) holding one text member, one WebSocket message a line,
exactly as its v5 public stream sends them:

    {"topic": "orderbook.500.BTCUSDT", "type": "snapshot" | "delta", "ts": 1704067200110,
     "data": {"s": "BTCUSDT", "b": [["42313.9", "1.2"], ...], "a": [...],
              "u": 1234, "seq": 5678}, "cts": 1704067200105}

Bybit's rules, and what this loader does about them:

- A `snapshot` replaces the book: a KIND_BOOK_CLEAR (FLAG_SNAPSHOT) and its levels. Bybit
  sends one at the start of a subscription and whenever its service restarts, when `u`
  starts again at 1 (counted in `meta['service_restarts']`).
- A `delta` sets levels to absolute sizes, "0" removes one. `u` is the update id of the
  topic: each delta is the previous message's `u + 1` (`orderbook_verdict`, shared with the
  live client `adapters.live.bybit_md`). A delta whose `u` is not above the book's is a
  repeat, dropped and counted. Any other break is a gap: counted in
  `meta['sequence_gaps']`, a KIND_BOOK_CLEAR with FLAG_RESYNC is emitted and deltas are
  dropped until the next snapshot (or, with `strict=True`, a DataError names file and line).
- `seq` is a cross sequence comparable between depths of one symbol; it only ever grows, and
  a decrease is counted in `meta['seq_backwards']` (nothing else is done with it).
- Times: `ts` (ms) is when Bybit's system produced the message; `cts` the matching engine's
  time. The file has no receive time: `ts_exch = ts_local = ts` in ns and every row carries
  FLAG_LOCAL_TS_MISSING. The live client uses the same `ts` as `ts_exch`.
- The category (spot or linear) is not in the file: `category` says it (default linear, the
  derivatives history page); it names the venue, `bybit-spot` or `bybit-linear`.
- Tick and lot size are inferred from the data (the finest decimal step present) unless an
  Instrument is given; inferred steps can be finer than the venue's filters.
- Plain (unzipped) JSON-lines files are read too.
"""

from __future__ import annotations

import os
import zipfile
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import numpy as np
import orjson
import pyarrow as pa

from adapters._sequence import DIFF_APPLY, DIFF_GAP, DIFF_STALE
from engine.data.stream import EventStream, check_order
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_LOCAL_TS_MISSING,
    FLAG_RESYNC,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry, infer_step

VENUE_SPOT: Final = "bybit-spot"
VENUE_LINEAR: Final = "bybit-linear"
VENUES: Final = {"spot": VENUE_SPOT, "linear": VENUE_LINEAR}
FORMAT: Final = "bybit-orderbook"

_MS: Final = 1_000_000
_ZIP_MAGIC: Final = b"PK\x03\x04"
_SNAP, _DELTA, _RESYNC = 0, 1, 2


def orderbook_verdict(
    bridging: bool, book_id: int, first: int, last: int, prev: int | None
) -> tuple[int, str]:
    """Bybit's continuity rule for one orderbook delta (`first == last == u`).

    After a snapshot (or a delta) at `book_id`, the next delta must carry `u == book_id +
    1`; one at or below `book_id` is stale. Same signature as the other venues' rules
    (`adapters.live.book_sync.Rule`); `bridging` and `prev` play no part.
    """
    if last <= book_id:
        return DIFF_STALE, ""
    if first == book_id + 1:
        return DIFF_APPLY, ""
    return DIFF_GAP, f"u={first} but the book is at u={book_id}"


def parse_topic(topic: str) -> tuple[int, str]:
    """(depth, symbol) of `orderbook.{depth}.{symbol}`; ValueError for anything else."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != "orderbook":
        raise ValueError(f"not an orderbook topic: {topic!r}")
    return int(parts[1]), parts[2]


def _open_lines(path: Path) -> tuple[IO[bytes], str, zipfile.ZipFile | None]:
    """The byte stream of a file's JSON lines, the name to report, and the zip to close."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        return open(path, "rb"), str(path), None
    try:
        zf = zipfile.ZipFile(path)
        members = [i for i in zf.infolist() if not i.is_dir()]
        if len(members) != 1:
            zf.close()
            raise FormatError(f"expected one file in the zip, found {len(members)}", path=str(path))
        return zf.open(members[0]), f"{path}:{members[0].filename}", zf
    except zipfile.BadZipFile as exc:
        raise FormatError(f"corrupt zip: {exc}", path=str(path)) from None


def sniff_bybit_orderbook(path: str | os.PathLike) -> str | None:
    """The symbol when the file (zip or plain) starts with a Bybit orderbook message."""
    try:
        stream, _, zf = _open_lines(Path(path))
    except (OSError, FormatError):
        return None
    try:
        with stream:
            line = stream.readline(1 << 22)
        msg = orjson.loads(line)
        if not isinstance(msg, dict) or msg.get("type") not in ("snapshot", "delta"):
            return None
        _, symbol = parse_topic(str(msg.get("topic", "")))
        data = msg["data"]
        return symbol if "b" in data and "a" in data and "u" in data else None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    finally:
        if zf is not None:
            zf.close()


def load_bybit_orderbook(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    instrument: Instrument | None = None,
    category: str = "linear",
    strict: bool = False,
) -> EventStream:
    """Load consecutive Bybit order-book history files of one symbol as one EventStream.

    Args:
        paths: one file or several consecutive ones (time order); zip or plain JSON lines.
        instrument: tick and lot sizes; inferred from the data when None.
        category: `linear` or `spot` (names the venue when no instrument is given).
        strict: raise DataError at the first sequence gap instead of resynchronising.

    Returns:
        The events; `meta` holds `source`, `format`, `venue`, `symbol`, `topic`, `lines`,
        `snapshots`, `deltas`, `deltas_applied`, `deltas_repeated`,
        `deltas_before_snapshot`, `sequence_gaps`, `service_restarts`, `seq_backwards`,
        `synced`.

    Raises:
        DataError: a malformed line, a second symbol, time going backwards, a gap when
            strict (naming file, zip member and line).
        FormatError: a corrupt zip or one with several members.
    """
    if category not in VENUES:
        raise UsageError(f"category must be 'linear' or 'spot', got {category!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("no Bybit order-book files given")
    loader = _Loader(strict)
    for path in paths:
        loader.read(Path(path))
    return loader.finish(instrument, category, [str(p) for p in paths])


class _Loader:
    """Message columns plus the sync state machine; rows are expanded at the end."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.m_ts = array("q")
        self.m_kind = array("B")
        self.m_bids = array("q")
        self.m_asks = array("q")
        self.m_line = array("q")  # line of each message in its file
        self.m_file = array("H")  # index in self.names
        self.names: list[str] = []
        self.prices: list[str] = []
        self.sizes: list[str] = []
        self.symbol: str | None = None
        self.topic: str | None = None
        self.synced = False
        self.book_u = 0
        self.last_seq: int | None = None
        self.last_ts = -(1 << 63)
        self.lines = 0
        self.snapshots = 0
        self.deltas = 0
        self.deltas_applied = 0
        self.deltas_repeated = 0
        self.deltas_before_snapshot = 0
        self.sequence_gaps = 0
        self.service_restarts = 0
        self.seq_backwards = 0

    def read(self, path: Path) -> None:
        stream, name, zf = _open_lines(path)
        try:
            with stream:
                for lineno, line in _numbered(stream, name):
                    self._line(line, name, lineno)
        finally:
            if zf is not None:
                zf.close()

    def _line(self, line: bytes, name: str, lineno: int) -> None:
        if not line.strip():
            return
        self.lines += 1
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"malformed JSON: {exc}", path=name, line=lineno) from None
        field = None
        try:
            field = "topic"
            topic = msg["topic"]
            parse_topic(topic)
            field = "type"
            kind = msg["type"]
            if kind not in ("snapshot", "delta"):
                raise ValueError(f"unknown type {kind!r}")
            field = "ts"
            ts = int(msg["ts"]) * _MS
            field = "data"
            data = msg["data"]
            field = "s"
            symbol = data["s"]
            field = "u"
            u = int(data["u"])
            field = "seq"
            seq = data.get("seq")
            field = "b"
            bids = data["b"]
            field = "a"
            asks = data["a"]
        except KeyError:
            raise DataError("missing field", path=name, line=lineno, field=field) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"unexpected message shape: {exc}", path=name, line=lineno, field=field
            ) from None
        if self.symbol is None:
            self.symbol, self.topic = symbol, topic
        elif symbol != self.symbol or topic != self.topic:
            raise DataError(
                f"{topic} in a file of {self.topic}: one symbol and depth a load",
                path=name,
                line=lineno,
                field="topic",
            )
        if ts < self.last_ts:
            raise DataError(
                f"ts goes backwards: {ts // _MS} after {self.last_ts // _MS}",
                path=name,
                line=lineno,
                field="ts",
            )
        self.last_ts = ts
        if seq is not None:
            seq = int(seq)
            if self.last_seq is not None and seq < self.last_seq:
                self.seq_backwards += 1
            self.last_seq = seq
        if kind == "snapshot":
            self.snapshots += 1
            if u == 1 and self.snapshots > 1:
                self.service_restarts += 1
            self.synced = True
            self.book_u = u
            self._emit(ts, _SNAP, bids, asks, name, lineno)
        else:
            self.deltas += 1
            if not self.synced:
                self.deltas_before_snapshot += 1
                return
            verdict, why = orderbook_verdict(False, self.book_u, u, u, None)
            if verdict == DIFF_STALE:
                self.deltas_repeated += 1
                return
            if verdict == DIFF_GAP:
                if self.strict:
                    raise DataError(f"sequence gap: {why}", path=name, line=lineno, field="u")
                self.sequence_gaps += 1
                self.synced = False
                self._emit(ts, _RESYNC, (), (), name, lineno)
                return
            self.book_u = u
            self.deltas_applied += 1
            if bids or asks:
                self._emit(ts, _DELTA, bids, asks, name, lineno)

    def _emit(self, ts: int, kind: int, bids, asks, name: str, lineno: int) -> None:
        if not self.names or self.names[-1] != name:
            self.names.append(name)
        self.m_file.append(len(self.names) - 1)
        self.m_line.append(lineno)
        self.m_ts.append(ts)
        self.m_kind.append(kind)
        self.m_bids.append(len(bids))
        self.m_asks.append(len(asks))
        for levels in (bids, asks):
            if levels:
                p, q = zip(*levels, strict=True)
                self.prices.extend(p)
                self.sizes.extend(q)

    def finish(self, instrument: Instrument | None, category: str, paths: list[str]) -> EventStream:
        if self.symbol is None:
            raise DataError("no order-book message", path=", ".join(paths))
        try:
            price_text = pa.array(self.prices, pa.string())
            size_text = pa.array(self.sizes, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise DataError("a price or size is not a decimal string", path=paths[0]) from None
        if instrument is None:
            kind = "spot" if category == "spot" else "perpetual"
            if category == "linear" and "-" in self.symbol:
                kind = "future"
            instrument = Instrument(
                symbol=self.symbol,
                venue=VENUES[category],
                tick_size=infer_step(price_text) if len(price_text) else 1,
                lot_size=infer_step(size_text) if len(size_text) else 1,
                kind=kind,
            )
        elif instrument.symbol != self.symbol:
            raise DataError(
                f"the file is {self.symbol}, the instrument given is {instrument.symbol}",
                path=paths[0],
                field="s",
            )
        events = self._rows(
            self._convert(instrument.prices_to_ticks, price_text, "price"),
            self._convert(instrument.sizes_to_lots, size_text, "size"),
        )
        check_order(events, path=", ".join(paths))
        registry = InstrumentRegistry()
        registry.add(instrument)
        meta = {
            "source": paths,
            "format": FORMAT,
            "venue": instrument.venue,
            "symbol": self.symbol,
            "topic": self.topic,
            "lines": self.lines,
            "snapshots": self.snapshots,
            "deltas": self.deltas,
            "deltas_applied": self.deltas_applied,
            "deltas_repeated": self.deltas_repeated,
            "deltas_before_snapshot": self.deltas_before_snapshot,
            "sequence_gaps": self.sequence_gaps,
            "service_restarts": self.service_restarts,
            "seq_backwards": self.seq_backwards,
            "synced": self.synced,
        }
        return EventStream(events, registry, meta)

    def _convert(self, fn, text: pa.Array, field: str) -> np.ndarray:
        """Exact text to ticks or lots; a value off the grid names its file and line."""
        try:
            return fn(text, field=field, row_offset=0)
        except DataError as exc:
            if exc.line is None:
                raise
            levels = np.frombuffer(self.m_bids, np.int64) + np.frombuffer(self.m_asks, np.int64)
            m = int(np.searchsorted(np.cumsum(levels), exc.line, side="right"))
            name, line = self.names[self.m_file[m]], self.m_line[m]
            raise DataError(exc.reason, path=name, line=line, field=field) from None

    def _rows(self, ticks: np.ndarray, lots: np.ndarray) -> np.ndarray:
        """Expand the message columns: [clear] bids asks per message, vectorised."""
        kind_m = np.frombuffer(self.m_kind, dtype=np.uint8)
        nb = np.frombuffer(self.m_bids, dtype=np.int64)
        na = np.frombuffer(self.m_asks, dtype=np.int64)
        head = (kind_m != _DELTA).astype(np.int64)  # snapshots and resyncs start with a clear
        rows = head + nb + na
        msg = np.repeat(np.arange(len(rows)), rows)
        starts = np.cumsum(rows) - rows
        pos = np.arange(len(msg)) - starts[msg]
        is_clear = (head[msg] == 1) & (pos == 0)
        level_pos = pos - head[msg]
        mk = kind_m[msg]
        ev = np.zeros(len(msg), dtype=EVENT_DTYPE)
        ts = np.frombuffer(self.m_ts, dtype=np.int64)[msg]
        ev["ts_exch"] = ts
        ev["ts_local"] = ts
        ev["kind"] = np.where(
            is_clear, KIND_BOOK_CLEAR, np.where(mk == _SNAP, KIND_BOOK_SNAPSHOT, KIND_BOOK_DELTA)
        )
        side = np.where(level_pos < nb[msg], SIDE_BUY, SIDE_SELL)
        ev["side"] = np.where(is_clear, SIDE_NONE, side)
        flags = np.full(len(msg), FLAG_LOCAL_TS_MISSING, dtype=np.uint16)
        flags[mk == _SNAP] |= FLAG_SNAPSHOT
        flags[mk == _RESYNC] |= FLAG_RESYNC
        # A resync clear is not the end of a message: the book is not consistent after it
        # (as in the Binance capture loader and the live clients).
        flags[(pos == rows[msg] - 1) & (mk != _RESYNC)] |= FLAG_LAST
        ev["flags"] = flags
        levels = ~is_clear
        ev["price"][levels] = ticks
        ev["size"][levels] = lots
        return ev


def _numbered(stream: IO[bytes], name: str) -> Iterator[tuple[int, bytes]]:
    """Lines with their numbers; a cut zip member is a FormatError naming the line."""
    lineno = 0
    try:
        for lineno, line in enumerate(stream, 1):
            yield lineno, line
    except (EOFError, zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"truncated or corrupt after line {lineno}: {exc}", path=name) from None
