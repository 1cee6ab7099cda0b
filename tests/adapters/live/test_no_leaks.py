"""The secrets never reach a journal or a log.

conftest.py scans the files and log records of every test in this folder; here the scanner
is shown to find what it looks for, and a whole live step (credentials, signing, journal,
logging, a failed request) is run with its output scanned explicitly.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.live.client_ids import ClientIdAllocator
from adapters.live.clock_offset import ClockOffset
from adapters.live.order_journal import OrderJournal, replay
from adapters.live.order_records import Intent, Reply
from adapters.live.secrets import (
    RedactingFilter,
    VenueRequestError,
    load_credentials,
    redacted_errors,
)
from adapters.live.signing import sign_ws_params, signed_query, signer_for
from tests.adapters.live.leaks import (
    API_KEY,
    API_SECRET,
    ED25519_PEM,
    ED25519_PEM_BODY,
    files_under,
    scan_files,
    scan_log_records,
)

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000_000_000_000


def test_scanner_finds_secrets_raw_and_percent_encoded(secret_file, tmp_path) -> None:
    raw = secret_file("planted-raw", f"x{API_SECRET}y")
    encoded = secret_file("planted-enc", "k=" + quote(ED25519_PEM_BODY, safe=""))
    clean = tmp_path / "clean"
    clean.write_text("k=" + ED25519_PEM_BODY[:-1])
    assert scan_files([raw, encoded, clean]) == [
        f"{encoded}: MC4C… (percent-encoded)",
        f"{raw}: NhqP… (raw)",
    ]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (API_KEY,), None)
    assert scan_log_records([record]) == ["log record 0: vmPU… (raw)"]


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_a_live_step_leaves_no_secret_in_journal_or_logs(
    kind, secret_file, tmp_path, caplog
) -> None:
    if kind == "hmac":
        key_file = secret_file(
            "binance.toml", f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"'
        )
        allowed = {key_file}
    else:
        pem = secret_file("binance.pem", ED25519_PEM)
        key_file = secret_file(
            "binance.toml", f'api_key = "{API_KEY}"\nprivate_key_file = "{pem.name}"'
        )
        allowed = {key_file, pem}
    creds = load_credentials("binance", env={}, key_file=key_file)
    caplog.handler.addFilter(RedactingFilter(creds))
    log = logging.getLogger("adapters.live.session")
    log.info("loaded %s from %s", creds, creds.source)
    signer = signer_for(creds)
    clock = ClockOffset(lambda: T0 + 60_000_000)
    clock.observe(T0, 1_700_000_000_020, T0 + 40_000_000)

    journal = OrderJournal.open(tmp_path / "orders.journal")
    ids = ClientIdAllocator.resume("ck", journal.recovered.records)
    intent = Intent(
        action="new",
        client_id=ids.next(),
        instrument="BTCUSDT",
        ts_ns=T0,
        side="buy",
        price="61837.63",
        qty="0.001",
        order_type="limit",
        tif="GTC",
    )
    journal.append_batch([intent])

    params = [
        ("symbol", intent.instrument),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", intent.qty),
        ("price", intent.price),
        ("newClientOrderId", intent.client_id),
        ("timestamp", clock.timestamp_ms()),
    ]
    query = signed_query(params, signer)
    headers = {"X-MBX-APIKEY": creds.api_key}
    ws_request = {
        "method": "order.place",
        "params": sign_ws_params({"apiKey": creds.api_key, **dict(params)}, signer),
    }
    # What is about to be logged holds the key and the signature: the scan could fail.
    assert API_KEY in str(headers) and API_KEY in json.dumps(ws_request)
    log.debug("POST /api/v3/order?%s headers %s", query, headers)
    log.debug("ws -> %s", json.dumps(ws_request))
    with pytest.raises(VenueRequestError) as err:
        with redacted_errors(f"placing {intent.client_id}", creds):
            raise ConnectionError(f"POST https://api.binance.com/api/v3/order?{query} {headers}")
    log.error("%s", err.value)
    try:
        raise RuntimeError(f"unexpected state with {creds.secret or ED25519_PEM.decode()}")
    except RuntimeError:
        log.exception("loop stopped")
    journal.append(Reply(intent.client_id, "reject", T0 + 1, code=-1022, message=str(err.value)))
    journal.close()

    written = [p for p in files_under(tmp_path) if p not in allowed]
    assert [p.name for p in written] == ["orders.journal"]
    assert scan_files(written) == []
    assert scan_log_records(caplog.records) == []
    assert "'X-MBX-APIKEY': '***'" in caplog.text
    assert f"newClientOrderId={intent.client_id}&timestamp=1700000000060&signature=***" in (
        caplog.text
    )
    assert '"apiKey": "***"' in caplog.text and '"signature": "***"' in caplog.text
    assert "Credentials(venue='binance', api_key='vmPU…', secret=<hidden>)" in caplog.text
    records = replay(tmp_path / "orders.journal").records
    assert records == [
        intent,
        Reply(intent.client_id, "reject", T0 + 1, code=-1022, message=str(err.value)),
    ]
    assert "signature=***" in records[1].message


def test_live_modules_load_no_cockpit_ui_or_network_library() -> None:
    modules = [
        "adapters.live.secrets",
        "adapters.live.signing",
        "adapters.live.clock_offset",
        "adapters.live.order_records",
        "adapters.live.order_journal",
        "adapters.live.client_ids",
        "adapters.live.order_state",
        "adapters.live.exec_events",
        "adapters.live.venue_filters",
        "adapters.live.exec_tracker",
    ]
    probe = "\n".join(f"import {m}" for m in modules) + (
        "\nimport json, secrets, sys\nprint(json.dumps([sorted(sys.modules), secrets.__file__]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded, stdlib_secrets = json.loads(out.stdout.strip().splitlines()[-1])
    assert "adapters.live.order_state" in loaded
    forbidden = ("cockpit", "textual", "rich", "websockets", "httpx", "aiohttp", "requests")
    assert sorted(m for m in loaded if m.split(".")[0] in forbidden) == []
    # Our module is adapters.live.secrets; `import secrets` still finds the standard library.
    assert Path(stdlib_secrets).parent != ROOT / "adapters" / "live"
