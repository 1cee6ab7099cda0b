"""Live trading against a real venue: the pieces below the network code.

One module a concept, none of them opens a socket:

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
"""
