"""Binance WebSocket captures (spot and USD-M futures) converted into engine events.

A capture is text, plain or gzip, one message a line: `<local receive time, ns> <raw JSON>`.
Stream messages use Binance's combined-stream envelope `{"stream": NAME, "data": {...}}`;
the REST depth snapshot the collector fetched is a bare line `{"lastUpdateId", "bids",
"asks"}` (futures add `E` and `T`). Several consecutive files of one market are read as one
stream: the depth sequence and the receive clock are checked across each file boundary.

Binance's quirks, and what this loader does about them:

- Clock: the collector's receive time runs about 1.27 s *behind* the exchange time `E` in
  the reference captures (`meta['exch_minus_local_ms']` reports the median over trades).
  Events are ordered by receive time, i.e. file order; `E` is not monotone across streams.
  A receive time that goes backwards is a DataError naming the file and line.
- Depth sync (Binance's documented procedure): diffs are buffered until the snapshot line;
  diffs the snapshot already holds are dropped (spot `u <= lastUpdateId`, futures
  `u < lastUpdateId`); the first applied diff must bridge the snapshot (spot
  `U <= lastUpdateId + 1 <= u`, futures `U <= lastUpdateId <= u`: the spot ETH capture
  starts exactly at `lastUpdateId + 1`, so nothing stricter); then every diff must continue
  the previous one (spot `U == previous u + 1`, futures `pu == previous u`).
- Buffered diffs are received before the snapshot but can only be applied after it: they
  are emitted right after the snapshot rows, stamped with the snapshot line's receive time
  (so `ts_local` stays monotone) while `ts_exch` keeps their own exchange time `E`.
- A continuity break (or a first diff that does not bridge the snapshot) is counted in
  `meta['sequence_gaps']` and emits a KIND_BOOK_CLEAR with FLAG_RESYNC; the book stays
  empty until the next snapshot line of the capture. Diffs received in between are buffered
  exactly as at start-up, so those the new snapshot does not cover are applied after it;
  the others are counted in `meta['diffs_discarded']`. With `strict=True` the first break
  is a DataError naming file and line instead.
- A capture with no snapshot line (e.g. a day file continuing the previous one, read on its
  own) cannot sync: no book rows are emitted, `meta['synced']` is False and every diff is
  counted in `meta['diffs_before_snapshot']`; trades and quotes are still emitted. Read it
  together with the file that holds the snapshot.
- A snapshot line arriving while the book is in sync and no newer than the last applied
  diff tells nothing new; it is skipped and counted in `meta['snapshots_skipped']`.
- Spot bookTicker carries no exchange time: `ts_exch` is the receive time and the rows are
  flagged FLAG_EXCH_TS_MISSING (likewise the spot REST snapshot). Futures use `E`.
- Trades: `ts_exch` is the trade time `T`; `m` true means the buyer was the maker, so the
  aggressor sold (SIDE_SELL). A trade id seen twice is dropped and counted in
  `meta['duplicate_trades']`. Futures trades whose `X` is not MARKET (INSURANCE_FUND, NA)
  are kept and counted by type in `meta['non_market_trades']`. `@aggTrade` messages become
  trades only when the capture has no `@trade` stream (both would count volume twice).
- Tick and lot sizes are inferred as the finest decimal step found in the data
  (`engine.instruments.infer_step`) unless an Instrument is given: a level size such as
  `25.42618900` in spot BTCUSDT makes the inferred lot 0.000001, finer than today's filter.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from array import array
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from adapters._sequence import DIFF_APPLY, DIFF_GAP, DIFF_STALE
from engine.data.stream import EventStream, check_order
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_EXCH_TS_MISSING,
    FLAG_LAST,
    FLAG_RESYNC,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry, infer_step

VENUE_SPOT: Final = "binance"
VENUE_USDM: Final = "binance-futures"

MAX_BUFFERED_DIFFS: Final = 10_000
"""Diffs held while waiting for a snapshot; older ones are discarded (and counted) beyond it.

A collector fetches its snapshot seconds after subscribing; a snapshot older than a
discarded diff fails the bridge check, so the cap can never corrupt the book."""

_MS: Final = 1_000_000  # Binance times are ms; events are ns

# Stream classes, looked up once per distinct stream name.
_S_DEPTH, _S_TRADE, _S_AGG, _S_TICKER, _S_UNKNOWN = range(5)

# Message shapes: every emitted message is one of these, so the per-line loop appends a
# shape code instead of kind, side and flags; the rows are expanded vectorised at the end.
# (kind, rows (-1: variable), side of the first part, side of the rest, flags, last-row flag)
_SHAPES: Final = (
    (KIND_BOOK_CLEAR, 1, SIDE_NONE, SIDE_NONE, FLAG_SNAPSHOT, 0),
    (KIND_BOOK_CLEAR, 1, SIDE_NONE, SIDE_NONE, FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING, 0),
    (KIND_BOOK_CLEAR, 1, SIDE_NONE, SIDE_NONE, FLAG_SNAPSHOT, FLAG_LAST),
    (KIND_BOOK_CLEAR, 1, SIDE_NONE, SIDE_NONE, FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING, FLAG_LAST),
    (KIND_BOOK_CLEAR, 1, SIDE_NONE, SIDE_NONE, FLAG_RESYNC, 0),
    (KIND_BOOK_SNAPSHOT, -1, SIDE_BUY, SIDE_SELL, FLAG_SNAPSHOT, FLAG_LAST),
    (KIND_BOOK_SNAPSHOT, -1, SIDE_BUY, SIDE_SELL, FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING, FLAG_LAST),
    (KIND_BOOK_DELTA, -1, SIDE_BUY, SIDE_SELL, 0, FLAG_LAST),
    (KIND_TRADE, 1, SIDE_BUY, SIDE_BUY, 0, FLAG_LAST),
    (KIND_TRADE, 1, SIDE_SELL, SIDE_SELL, 0, FLAG_LAST),
    (KIND_TRADE, 1, SIDE_BUY, SIDE_BUY, 0, FLAG_LAST),  # from @aggTrade
    (KIND_TRADE, 1, SIDE_SELL, SIDE_SELL, 0, FLAG_LAST),  # from @aggTrade
    (KIND_QUOTE, 2, SIDE_BUY, SIDE_SELL, 0, FLAG_LAST),
    (KIND_QUOTE, 2, SIDE_BUY, SIDE_SELL, FLAG_EXCH_TS_MISSING, FLAG_LAST),
)
_CLEAR_SNAP, _CLEAR_SNAP_NOEX, _CLEAR_EMPTY, _CLEAR_EMPTY_NOEX, _CLEAR_RESYNC = range(5)
_SNAP, _SNAP_NOEX, _DELTA, _TRADE_BUY, _TRADE_SELL, _AGG_BUY, _AGG_SELL = range(5, 12)
_QUOTE, _QUOTE_NOEX = 12, 13
_T_KIND, _T_ROWS, _T_SIDE_A, _T_SIDE_B, _T_FLAGS, _T_LAST = (
    np.array(col, dtype=np.int64) for col in zip(*_SHAPES, strict=True)
)

# Depth sync states.
_WAIT, _BRIDGE, _SYNCED = 0, 1, 2

_LINE_HEAD = re.compile(rb"^\d+ \{")
_SNIFF_LINES = 5
_SNIFF_LIMIT = 1 << 22


def sniff_binance_capture(path: str | os.PathLike) -> bool:
    """True when the file (plain or gzip) starts like a Binance WebSocket capture."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            # A capture may open with a subscription reply ({"result": null, "id": 1}):
            # look at a few lines for a stream message or a snapshot.
            for _ in range(_SNIFF_LINES):
                line = f.readline(_SNIFF_LIMIT)
                if not _LINE_HEAD.match(line):
                    return False
                try:
                    msg = orjson.loads(line[line.index(b" ") + 1 :])
                except orjson.JSONDecodeError:
                    # Only a line longer than the read limit (a huge snapshot) may end early.
                    head = line[:200]
                    return len(line) >= _SNIFF_LIMIT and (
                        b'"stream"' in head or b'"lastUpdateId"' in head
                    )
                if not isinstance(msg, dict):
                    return False
                if ("stream" in msg and "data" in msg) or ("lastUpdateId" in msg and "bids" in msg):
                    return True
    except (OSError, EOFError, zlib.error):
        return False
    return False


_MARKET_LINES = 200


def sniff_capture_market(path: str | os.PathLike) -> tuple[str | None, bool | None]:
    """(symbol, is USD-M futures) of a capture from its first lines; None where not seen.

    Futures show themselves by `pu` in depth diffs, `e` in bookTicker, `X` in trades or `E`
    in the REST snapshot; spot by the absence of `pu` in a depth diff. Used to tell which
    files continue one market (read together) and which are other markets (merged).
    """
    symbol: str | None = None
    futures: bool | None = None
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            for _ in range(_MARKET_LINES):
                line = f.readline(_SNIFF_LIMIT)
                if not line:
                    break
                try:
                    msg = orjson.loads(line[line.index(b" ") + 1 :])
                except (ValueError, orjson.JSONDecodeError):
                    continue
                if not isinstance(msg, dict):
                    continue
                if "lastUpdateId" in msg:
                    futures = "E" in msg or "T" in msg
                    continue
                data = msg.get("data")
                if not isinstance(data, dict):
                    continue
                if symbol is None and isinstance(data.get("s"), str):
                    symbol = data["s"]
                cls = _classify(str(msg.get("stream", "")))
                if cls == _S_DEPTH:
                    futures = "pu" in data
                elif cls == _S_TICKER and "e" in data:
                    futures = True
                elif cls == _S_TRADE and "X" in data:
                    futures = True
                if symbol is not None and futures is not None:
                    break
    except (OSError, EOFError, zlib.error):
        pass
    return symbol, futures


def load_binance_capture(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    instrument: Instrument | None = None,
    strict: bool = False,
) -> EventStream:
    """Load consecutive Binance WebSocket capture files of one market as one EventStream.

    Args:
        paths: one file or several consecutive files (in time order) of one symbol.
        instrument: tick and lot sizes to use; inferred from the data when None. Its symbol
            must match the capture's.
        strict: raise DataError at the first depth sequence gap instead of resynchronising.

    Returns:
        One instrument's events ordered by receive time. `meta` holds `source` (the paths),
        `format` (`binance-ws:spot` or `binance-ws:usdm`), `venue`, `symbol`, `lines`,
        `lines_per_file`, the messages read (`depth_messages`, `level_updates`, `trades`,
        `agg_trades`, `book_tickers`, `snapshots`), the sync report (`synced`,
        `snapshots_applied`, `snapshots_skipped`, `sequence_gaps`, `diffs_applied`,
        `diffs_before_snapshot`, `diffs_discarded`), what was dropped or set apart
        (`duplicate_trades`, `agg_trades_ignored`, `non_market_trades` and
        `unknown_messages` by name) and `exch_minus_local_ms` (median over trades).

    Raises:
        DataError: a malformed line, a receive time going backwards, a second symbol, a
            price off the instrument's grid, a gap when `strict` (each naming file and line).
        FormatError: a truncated or corrupt gzip file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("no Binance capture files given")
    loader = _Loader(strict)
    for path in paths:
        loader.read_file(path)
    return loader.finish(instrument)


def depth_diff_verdict(
    futures: bool, bridging: bool, book_id: int, first: int, last: int, pu: int | None
) -> tuple[int, str]:
    """Binance's documented sync rule for one depth diff, shared by captures and live feeds.

    Args:
        futures: USD-M futures rules instead of spot.
        bridging: the book was just set from a REST snapshot and no diff applied since.
        book_id: the snapshot's `lastUpdateId` when bridging, else the last applied `u`.
        first, last, pu: the diff's `U`, `u` and (futures, not bridging) `pu`.

    Returns:
        (DIFF_STALE, DIFF_APPLY or DIFF_GAP, why: the broken condition for a gap, else "").
    """
    if bridging:
        if futures:
            if last < book_id:
                return DIFF_STALE, ""
            if first <= book_id <= last:
                return DIFF_APPLY, ""
            want = f"U <= lastUpdateId {book_id} <= u"
        else:
            if last <= book_id:
                return DIFF_STALE, ""
            if first <= book_id + 1 <= last:
                return DIFF_APPLY, ""
            want = f"U <= lastUpdateId + 1 = {book_id + 1} <= u"
        return DIFF_GAP, f"first diff U={first} u={last} does not satisfy {want}"
    if futures:
        if pu == book_id:
            return DIFF_APPLY, ""
        return DIFF_GAP, f"pu={pu} but the previous diff ended at u={book_id}"
    if first == book_id + 1:
        return DIFF_APPLY, ""
    return DIFF_GAP, f"U={first} but the previous diff ended at u={book_id}"


class _Loader:
    """Parses lines into message columns and runs the depth sync state machine."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        # Message columns (one entry per emitted message) and row text columns.
        self.m_ts = array("q")
        self.m_exch = array("q")
        self.m_shape = array("B")
        self.m_line = array("q")  # global line number (see self.file_starts)
        self.v_rows = array("q")  # rows and bid rows of variable-shape messages, in order
        self.v_bids = array("q")
        self.prices: list[str] = []
        self.sizes: list[str] = []
        # Files: names and the global line number where each starts.
        self.paths: list[str] = []
        self.file_starts: list[int] = []
        self.lines = 0
        self.last_ts = -(1 << 63)
        self.symbol: str | None = None
        self.futures: bool | None = None  # decided by depth messages and snapshots
        self.futures_hint = False  # futures-only fields seen in trades or tickers
        # Depth sync.
        self.state = _WAIT
        self.has_synced = False
        self.last_update_id = 0
        self.prev_u = 0
        # Diffs waiting for a snapshot, as (receive time, global line, raw JSON): kept as
        # bytes, not parsed dicts, so thousands of them neither weigh on memory nor make
        # every cyclic GC pass walk their nested lists.
        self.buffer: deque[tuple[int, int, bytes]] = deque()
        # Counts.
        self.depth_messages = 0
        self.level_updates = 0
        self.trades = 0
        self.agg_trades = 0
        self.book_tickers = 0
        self.snapshots = 0
        self.snapshots_applied = 0
        self.snapshots_skipped = 0
        self.sequence_gaps = 0
        self.diffs_applied = 0
        self.diffs_before_snapshot = 0
        self.diffs_discarded = 0
        self.duplicate_trades = 0
        self.non_market_trades: dict[str, int] = {}
        self.unknown_messages: dict[str, int] = {}
        self.seen_trades: set[int] = set()
        self.seen_aggs: set[int] = set()

    # -- reading -------------------------------------------------------------------------

    def read_file(self, path: Path) -> None:
        """Parse every line of one file, appending to the columns."""
        name = str(path)
        try:
            with open(path, "rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
            # A large BufferedReader over GzipFile splits lines in C: faster than iterating
            # the GzipFile itself, whose readline is Python code.
            fh = io.BufferedReader(gzip.GzipFile(path, "rb"), 1 << 20) if gz else open(path, "rb")
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror or exc}", path=name) from None
        self.paths.append(name)
        base = self.lines
        self.file_starts.append(base)
        with fh:
            self.lines = base + self._parse_lines(fh, name, base)

    def _parse_lines(self, fh, name: str, base: int) -> int:
        """The per-line loop: kept flat, with bound methods in locals, because it is hot."""
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        m_ts = self.m_ts.append
        m_exch = self.m_exch.append
        m_shape = self.m_shape.append
        m_line = self.m_line.append
        p_add = self.prices.append
        s_add = self.sizes.append
        stream_class: dict[str, int] = {}
        seen_trades = self.seen_trades
        seen_aggs = self.seen_aggs
        last_ts = self.last_ts
        symbol = self.symbol
        n_trades = n_aggs = n_tickers = n_dups = 0
        futures_hint = self.futures_hint
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - the error below names it
                sp = line.find(b" ")
                try:
                    ts = int(line[:sp]) if sp > 0 else None
                except ValueError:
                    ts = None
                if ts is None:
                    raise DataError(
                        f"expected '<receive time ns> <JSON>', got {line[:60]!r}",
                        path=name,
                        line=lineno,
                    )
                if ts < last_ts:
                    raise DataError(
                        f"receive time goes backwards: {ts} after {last_ts}",
                        path=name,
                        line=lineno,
                        field="receive time",
                    )
                last_ts = ts
                try:
                    raw = line[sp + 1 :]
                    msg = loads(raw)
                except decode_error as exc:
                    raise DataError(f"malformed JSON: {exc}", path=name, line=lineno) from None
                field = None
                try:
                    stream = msg.get("stream")
                    if stream is None:
                        if "lastUpdateId" in msg:
                            self._on_snapshot(ts, msg, base + lineno, name, lineno)
                        else:
                            key = "(no stream)"
                            self.unknown_messages[key] = self.unknown_messages.get(key, 0) + 1
                        continue
                    cls = stream_class.get(stream)
                    if cls is None:
                        cls = stream_class[stream] = _classify(stream)
                    if cls == _S_UNKNOWN:
                        self.unknown_messages[stream] = self.unknown_messages.get(stream, 0) + 1
                        continue
                    data = msg["data"]
                    field = "s"
                    s = data["s"]
                    if s != symbol:
                        if symbol is not None:
                            raise DataError(
                                f"symbol {s!r} in a capture of {symbol!r}: one symbol a capture",
                                path=name,
                                line=lineno,
                                field="s",
                            )
                        symbol = self.symbol = s
                    field = None
                    if cls == _S_TICKER:
                        n_tickers += 1
                        e = data.get("E")
                        m_ts(ts)
                        if e is None:
                            m_exch(ts)
                            m_shape(_QUOTE_NOEX)
                        else:
                            futures_hint = True  # only futures tickers carry E
                            m_exch(e * _MS)
                            m_shape(_QUOTE)
                        m_line(base + lineno)
                        p_add(data["b"])
                        s_add(data["B"])
                        p_add(data["a"])
                        s_add(data["A"])
                    elif cls == _S_TRADE:
                        n_trades += 1
                        tid = data["t"]
                        if tid in seen_trades:
                            n_dups += 1
                            continue
                        seen_trades.add(tid)
                        x = data.get("X")
                        if x is not None:
                            futures_hint = True  # only futures trades carry X
                            if x != "MARKET":
                                self.non_market_trades[x] = self.non_market_trades.get(x, 0) + 1
                        m_ts(ts)
                        m_exch(data["T"] * _MS)
                        m_shape(_TRADE_SELL if data["m"] else _TRADE_BUY)
                        m_line(base + lineno)
                        p_add(data["p"])
                        s_add(data["q"])
                    elif cls == _S_DEPTH:
                        self._on_depth(ts, data, raw, base + lineno, name, lineno)
                    else:  # _S_AGG
                        n_aggs += 1
                        tid = data["a"]
                        if tid in seen_aggs:
                            n_dups += 1
                            continue
                        seen_aggs.add(tid)
                        m_ts(ts)
                        m_exch(data["T"] * _MS)
                        m_shape(_AGG_SELL if data["m"] else _AGG_BUY)
                        m_line(base + lineno)
                        p_add(data["p"])
                        s_add(data["q"])
                except KeyError as exc:
                    raise DataError(
                        "missing field", path=name, line=lineno, field=field or str(exc.args[0])
                    ) from None
                except (TypeError, AttributeError, IndexError, ValueError) as exc:
                    raise DataError(
                        f"unexpected message shape: {exc}", path=name, line=lineno, field=field
                    ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            # gzip raises these from the line iterator when the file is cut or corrupt.
            raise FormatError(
                f"truncated or corrupt gzip after line {lineno}: {exc}", path=name
            ) from None
        self.last_ts = last_ts
        self.futures_hint = futures_hint
        self.trades += n_trades + n_aggs
        self.agg_trades += n_aggs
        self.book_tickers += n_tickers
        self.duplicate_trades += n_dups
        return lineno

    # -- depth sync ----------------------------------------------------------------------

    def _set_market(self, futures: bool, name: str, lineno: int) -> None:
        if self.futures is None:
            self.futures = futures
        elif self.futures != futures:
            raise DataError(
                "capture mixes spot and USD-M futures depth messages", path=name, line=lineno
            )

    def _on_snapshot(self, ts: int, msg: dict, gline: int, name: str, lineno: int) -> None:
        """A REST depth snapshot line: clear, the levels, then the buffered diffs."""
        self.snapshots += 1
        e = msg.get("E")
        self._set_market(e is not None or "T" in msg, name, lineno)
        last = msg["lastUpdateId"]
        bids = msg["bids"]
        asks = msg["asks"]
        if self.state == _SYNCED and last <= self.prev_u:
            self.snapshots_skipped += 1
            return
        self.snapshots_applied += 1
        exch = ts if e is None else e * _MS
        empty = not bids and not asks
        if e is None:
            clear = _CLEAR_EMPTY_NOEX if empty else _CLEAR_SNAP_NOEX
        else:
            clear = _CLEAR_EMPTY if empty else _CLEAR_SNAP
        self._emit_clear(ts, exch, clear, gline)
        if not empty:
            self._emit_levels(ts, exch, _SNAP if e is not None else _SNAP_NOEX, gline, bids, asks)
        self.state = _BRIDGE
        self.last_update_id = last
        buffered, self.buffer = self.buffer, deque()
        for _, bline, raw in buffered:
            # Stamped with the snapshot's receive time: they can only apply after it.
            self._route_diff(ts, orjson.loads(raw)["data"], raw, bline)

    def _on_depth(
        self, ts: int, data: dict, raw: bytes, gline: int, name: str, lineno: int
    ) -> None:
        self.depth_messages += 1
        self.level_updates += len(data["b"]) + len(data["a"])
        # Touch the sequence fields now: a buffered diff is applied later, at the snapshot
        # line, and a missing field must be reported at its own line.
        data["U"], data["u"], data["E"]  # noqa: B018
        self._set_market("pu" in data, name, lineno)
        self._route_diff(ts, data, raw, gline)

    def _route_diff(self, ts: int, data: dict, raw: bytes, gline: int) -> None:
        """Buffer, drop, apply or break on one diff according to the sync state."""
        if self.state == _WAIT:
            self.buffer.append((ts, gline, raw))
            if len(self.buffer) > MAX_BUFFERED_DIFFS:
                self.buffer.popleft()
                self._count_dropped()
            return
        bridging = self.state == _BRIDGE
        verdict, why = depth_diff_verdict(
            bool(self.futures),
            bridging,
            self.last_update_id if bridging else self.prev_u,
            data["U"],
            data["u"],
            data["pu"] if self.futures and not bridging else None,
        )
        if verdict == DIFF_STALE:
            self._count_dropped()
            return
        if verdict == DIFF_GAP:
            self._gap(ts, data, raw, gline, why)
            return
        if bridging:
            self.state = _SYNCED
            self.has_synced = True
        self.prev_u = data["u"]
        self.diffs_applied += 1
        bids = data["b"]
        asks = data["a"]
        if bids or asks:
            self._emit_levels(ts, data["E"] * _MS, _DELTA, gline, bids, asks)

    def _count_dropped(self) -> None:
        if self.has_synced:
            self.diffs_discarded += 1
        else:
            self.diffs_before_snapshot += 1

    def _gap(self, ts: int, data: dict, raw: bytes, gline: int, why: str) -> None:
        """A continuity break: clear the book and wait for the next snapshot line."""
        if self.strict:
            path, line = self._where(gline)
            raise DataError(f"depth sequence gap: {why}", path=path, line=line, field="U")
        self.sequence_gaps += 1
        self._emit_clear(ts, data["E"] * _MS, _CLEAR_RESYNC, gline)
        self.state = _WAIT
        self.has_synced = True  # diffs dropped from now on are discards, not start-up
        self.buffer.append((ts, gline, raw))

    def _emit_clear(self, ts: int, exch: int, shape: int, gline: int) -> None:
        self.m_ts.append(ts)
        self.m_exch.append(exch)
        self.m_shape.append(shape)
        self.m_line.append(gline)
        self.prices.append("0")
        self.sizes.append("0")

    def _emit_levels(
        self, ts: int, exch: int, shape: int, gline: int, bids: list, asks: list
    ) -> None:
        self.m_ts.append(ts)
        self.m_exch.append(exch)
        self.m_shape.append(shape)
        self.m_line.append(gline)
        self.v_rows.append(len(bids) + len(asks))
        self.v_bids.append(len(bids))
        # zip(*levels) splits [[p, q], ...] into a prices tuple and a sizes tuple in C.
        if bids:
            p, q = zip(*bids, strict=True)
            self.prices.extend(p)
            self.sizes.extend(q)
        if asks:
            p, q = zip(*asks, strict=True)
            self.prices.extend(p)
            self.sizes.extend(q)

    def _where(self, gline: int) -> tuple[str, int]:
        """(path, line in that file) of a global line number."""
        i = int(np.searchsorted(self.file_starts, gline, side="left")) - 1
        return self.paths[i], gline - self.file_starts[i]

    # -- building the stream -------------------------------------------------------------

    def finish(self, instrument: Instrument | None) -> EventStream:
        """Expand the message columns into events and convert prices and sizes exactly."""
        if self.state == _WAIT:
            # Diffs still waiting for a snapshot that never came.
            for _ in self.buffer:
                self._count_dropped()
            self.buffer.clear()
        futures = self.futures if self.futures is not None else self.futures_hint
        symbol = self.symbol
        if instrument is not None:
            if symbol is not None and instrument.symbol != symbol:
                raise DataError(
                    f"the capture is {symbol}, the instrument given is {instrument.symbol}",
                    path=self.paths[0],
                    field="s",
                )
        elif symbol is None:
            raise DataError(
                "no stream message names a symbol: cannot build the instrument", path=self.paths[0]
            )

        shape = np.frombuffer(self.m_shape, dtype=np.uint8).astype(np.intp)
        n_msgs = len(shape)
        rows = _T_ROWS[shape]
        nfirst = np.ones(n_msgs, dtype=np.int64)
        var = rows < 0
        rows[var] = np.frombuffer(self.v_rows, dtype=np.int64)
        nfirst[var] = np.frombuffer(self.v_bids, dtype=np.int64)
        msg = np.repeat(np.arange(n_msgs), rows)
        ends = np.cumsum(rows)
        pos = np.arange(len(msg)) - (ends - rows)[msg]
        shape_r = shape[msg]

        msg_line = np.frombuffer(self.m_line, dtype=np.int64)
        price_text = self._text(self.prices, msg, msg_line, "price")
        size_text = self._text(self.sizes, msg, msg_line, "size")
        self.prices = self.sizes = []  # free the Python strings early
        if instrument is None:
            kind = "spot"
            if futures:
                kind = "future" if "_" in symbol else "perpetual"
            instrument = Instrument(
                symbol=symbol,
                venue=VENUE_USDM if futures else VENUE_SPOT,
                # Distinct values first: the regex inside infer_step is the costly part.
                tick_size=infer_step(pc.unique(price_text)),
                lot_size=infer_step(pc.unique(size_text)),
                kind=kind,
            )
        price = self._convert(instrument.prices_to_ticks, price_text, msg, msg_line, "price")
        size = self._convert(instrument.sizes_to_lots, size_text, msg, msg_line, "size")

        keep = None
        dropped_aggs = 0
        if self.trades > self.agg_trades and self.agg_trades:
            is_agg = (shape == _AGG_BUY) | (shape == _AGG_SELL)
            dropped_aggs = int(is_agg.sum())
            keep = ~is_agg[msg]

        events = np.empty(len(msg), dtype=EVENT_DTYPE)
        events["ts_local"] = np.frombuffer(self.m_ts, dtype=np.int64)[msg]
        events["ts_exch"] = np.frombuffer(self.m_exch, dtype=np.int64)[msg]
        events["price"] = price
        events["size"] = size
        events["instrument"] = 0
        events["kind"] = _T_KIND[shape_r]
        events["side"] = np.where(pos < nfirst[msg], _T_SIDE_A[shape_r], _T_SIDE_B[shape_r])
        events["flags"] = _T_FLAGS[shape_r] | np.where(pos == rows[msg] - 1, _T_LAST[shape_r], 0)
        if keep is not None:
            events = events[keep]
        check_order(events, path=", ".join(self.paths))

        registry = InstrumentRegistry()
        registry.add(instrument)
        trade_rows = events[events["kind"] == KIND_TRADE]
        lead = (
            float(np.median(trade_rows["ts_exch"] - trade_rows["ts_local"])) / _MS
            if len(trade_rows)
            else None
        )
        meta = {
            "source": list(self.paths),
            "format": "binance-ws:usdm" if futures else "binance-ws:spot",
            "venue": instrument.venue,
            "symbol": instrument.symbol,
            "lines": self.lines,
            "lines_per_file": np.diff([*self.file_starts, self.lines]).tolist(),
            "depth_messages": self.depth_messages,
            "level_updates": self.level_updates,
            "trades": self.trades,
            "agg_trades": self.agg_trades,
            "agg_trades_ignored": dropped_aggs,
            "book_tickers": self.book_tickers,
            "snapshots": self.snapshots,
            "snapshots_applied": self.snapshots_applied,
            "snapshots_skipped": self.snapshots_skipped,
            "synced": self.state != _WAIT,
            "sequence_gaps": self.sequence_gaps,
            "diffs_applied": self.diffs_applied,
            "diffs_before_snapshot": self.diffs_before_snapshot,
            "diffs_discarded": self.diffs_discarded,
            "duplicate_trades": self.duplicate_trades,
            "non_market_trades": dict(self.non_market_trades),
            "unknown_messages": dict(self.unknown_messages),
            "exch_minus_local_ms": lead,
        }
        return EventStream(events, registry, meta)

    def _convert(self, fn, text: pa.Array, msg: np.ndarray, msg_line: np.ndarray, field: str):
        """Exact text to ticks or lots; a failure names the file and line of its message."""
        try:
            return fn(text, field=field, row_offset=0)
        except DataError as exc:
            if exc.line is None:
                raise
            path, line = self._where(int(msg_line[msg[exc.line]]))
            raise DataError(exc.reason, path=path, line=line, field=field) from None

    def _text(self, values: list, msg: np.ndarray, msg_line: np.ndarray, field: str) -> pa.Array:
        """Prices or sizes as an Arrow string array; Binance sends decimals as JSON strings."""
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            i = next(i for i, v in enumerate(values) if not isinstance(v, str))
            path, line = self._where(int(msg_line[msg[i]]))
            raise DataError(
                f"{values[i]!r} is not a decimal string", path=path, line=line, field=field
            ) from None


def _classify(stream: str) -> int:
    """The class of a combined-stream name such as `btcusdt@depth@100ms`."""
    parts = stream.split("@")
    kind = parts[1] if len(parts) > 1 else ""
    if kind == "depth" and len(parts) <= 3:
        return _S_DEPTH  # diff depth; `@depth5`/`@depth20` partial books are unknown here
    if kind == "trade":
        return _S_TRADE
    if kind == "aggTrade":
        return _S_AGG
    if kind == "bookTicker":
        return _S_TICKER
    return _S_UNKNOWN
