"""Live trading against a real venue: connections, the sandbox venue, and the order pieces.

Connections (asyncio, WebSocket):

- `ws_venue`: the base class of WebSocket venues (lifecycle, reconnect with backoff,
  rotation, request/response correlation, rate limits, book sequencing and resync), with its
  parts `backoff`, `rate_limit`, `correlation`, `http`, `rows`, `book_sync`.
- `binance_spot_md`, `bybit_md`: market data of two venues on that base.
- `binance_spot_exec` (with `binance_exec_messages`): Binance spot orders over the WebSocket
  API and the user data stream, reported as `exec_events.ExecEvent`s.
- `event_loop`: the loop they run on (uvloop where installed).
- `sandbox_md`, `sandbox_replay`: the loopback sandbox venue server and what it replays.
- `sandbox_exec` (with `sandbox_matching`, `sandbox_auth`, `sandbox_json`): the sandbox's
  order side, Binance's spot WebSocket API on the same port, matching with the engine's
  venue model.

Orders (no sockets):

- `secrets`: API credentials from the environment or an owner-only key file; a repr that
  never shows them; redaction of logs and error messages.
- `signing`: request signatures (HMAC-SHA256, Ed25519) behind one `Signer` protocol, and
  the REST and WebSocket-API payload rules of Binance.
- `clock_offset`: the venue's clock measured NTP-style, so request timestamps land inside
  the venue's receive window.
- `order_records`: the record kinds of the order journal (intent, reply, event, marker).
- `order_journal`: the durable, append-only journal file (length + CRC32 frames, fsync
  before an order is sent, torn-tail recovery).
- `client_ids`: deterministic client order ids that are never reused across restarts.
- `order_state`: the per-order state rebuilt from the journal after a crash, the starting
  point of reconciliation with the venue.
- `exec_events`: venue-neutral order requests and execution events (what the engine glue
  sends and consumes).
- `venue_filters`: a symbol's order rules from Binance's exchangeInfo, checked before sending.
- `exec_tracker`: each execution fact once and in order (deduplication, implied acks,
  settling requests whose outcome was unknown).

The session (the engine on a venue):

- `session`: `LiveSession`, market data and execution of one venue wired to
  `engine.live.LiveEngine` on asyncio (journal before send, reconciliation at start);
  assembled from mixins: `session_lifecycle` (start, stop, flatten, close),
  `session_stepping` (the engine step, journal then send), `session_market` (market data
  rows, book sync in band), `session_execution` (execution events, reconciliation glue,
  funding, position drift).
- `session_orders`: outbox rows to venue requests and journal intents, execution events to
  engine reports (no I/O).
- `session_reconcile`: the journal against the venue after a restart (verdicts, the diff
  that halts trading).
- `session_status`: status snapshots for a UI, and the hot path's section timings.
- `session_env`: the endpoints behind a URL (sandbox, testnet, live) and the sandbox's
  test account.
"""
