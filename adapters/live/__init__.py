"""Live venue connections: WebSocket market data, the sandbox venue server, and their parts."""
