"""Credentials from the environment and owner-only key files; redaction of logs and errors."""

from __future__ import annotations

import logging
import os
import traceback

import pytest

from adapters.live import secrets
from adapters.live.secrets import (
    Credentials,
    RedactingFilter,
    VenueRequestError,
    env_names,
    load_credentials,
    redact,
    redacted_errors,
)
from engine.errors import CockpitError, UsageError
from tests.adapters.live.leaks import API_KEY, API_SECRET, ED25519_PEM, ED25519_PEM_BODY

HMAC_ENV = {"COCKPIT_BINANCE_API_KEY": API_KEY, "COCKPIT_BINANCE_API_SECRET": API_SECRET}
REST_URL = (
    "https://api.binance.com/api/v3/order?symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
)


def hmac_creds() -> Credentials:
    return Credentials("binance", API_KEY, secret=API_SECRET, source="test")


# --- sources --------------------------------------------------------------------------------


def test_env_names_follow_the_venue() -> None:
    assert env_names("binance-futures") == {
        "api_key": "COCKPIT_BINANCE_FUTURES_API_KEY",
        "api_secret": "COCKPIT_BINANCE_FUTURES_API_SECRET",
        "private_key_file": "COCKPIT_BINANCE_FUTURES_PRIVATE_KEY_FILE",
        "key_file": "COCKPIT_BINANCE_FUTURES_KEY_FILE",
    }
    with pytest.raises(UsageError, match="venue name 'Binance!'"):
        env_names("Binance!")


def test_hmac_credentials_from_environment() -> None:
    creds = load_credentials("binance", env={**HMAC_ENV, "OTHER": "x"})
    assert (creds.venue, creds.api_key, creds.secret, creds.kind) == (
        "binance",
        API_KEY,
        API_SECRET,
        "hmac",
    )
    assert creds.private_key_pem is None
    assert creds.source == "environment (COCKPIT_BINANCE_API_KEY)"


def test_values_are_stripped_of_a_trailing_newline() -> None:
    creds = load_credentials(
        "binance",
        env={"COCKPIT_BINANCE_API_KEY": API_KEY + "\n", "COCKPIT_BINANCE_API_SECRET": " s3 "},
    )
    assert (creds.api_key, creds.secret) == (API_KEY, "s3")


def test_ed25519_credentials_from_environment(secret_file) -> None:
    pem = secret_file("key.pem", ED25519_PEM)
    env = {"COCKPIT_BINANCE_API_KEY": API_KEY, "COCKPIT_BINANCE_PRIVATE_KEY_FILE": str(pem)}
    creds = load_credentials("binance", env=env)
    assert creds.kind == "ed25519"
    assert creds.private_key_pem == ED25519_PEM
    assert creds.secret is None


def test_nothing_set_names_every_variable() -> None:
    with pytest.raises(UsageError) as err:
        load_credentials("binance", env={})
    assert str(err.value) == (
        "no credentials for binance: set COCKPIT_BINANCE_API_KEY with "
        "COCKPIT_BINANCE_API_SECRET (HMAC) or COCKPIT_BINANCE_PRIVATE_KEY_FILE (Ed25519 PEM), "
        "or COCKPIT_BINANCE_KEY_FILE (a key file readable only by you)"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COCKPIT_BINANCE_API_SECRET": API_SECRET}, "COCKPIT_BINANCE_API_KEY is missing"),
        ({"COCKPIT_BINANCE_API_KEY": API_KEY}, "neither COCKPIT_BINANCE_API_SECRET"),
        (
            {**HMAC_ENV, "COCKPIT_BINANCE_PRIVATE_KEY_FILE": "/k.pem"},
            "both COCKPIT_BINANCE_API_SECRET and COCKPIT_BINANCE_PRIVATE_KEY_FILE",
        ),
        (
            {**HMAC_ENV, "COCKPIT_BINANCE_KEY_FILE": "/k.toml"},
            "both COCKPIT_BINANCE_KEY_FILE and COCKPIT_BINANCE_API_KEY",
        ),
    ],
)
def test_incomplete_or_ambiguous_environment_is_refused(env, message) -> None:
    with pytest.raises(UsageError, match=message) as err:
        load_credentials("binance", env=env)
    assert API_SECRET not in str(err.value) and API_KEY not in str(err.value)


def test_toml_key_file(secret_file) -> None:
    path = secret_file("binance.toml", f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\n')
    creds = load_credentials(
        "binance", env=HMAC_ENV | {"COCKPIT_BINANCE_API_KEY": "ignored"}, key_file=path
    )
    assert (creds.api_key, creds.secret, creds.source) == (API_KEY, API_SECRET, str(path))


def test_plain_key_file_from_the_environment(secret_file) -> None:
    path = secret_file(
        "binance.keys", f"# my keys\n\napi_key = {API_KEY}\napi_secret='{API_SECRET}'\n"
    )
    creds = load_credentials("binance", env={"COCKPIT_BINANCE_KEY_FILE": str(path)})
    assert (creds.api_key, creds.secret) == (API_KEY, API_SECRET)


def test_toml_key_file_with_a_table_per_venue(secret_file) -> None:
    path = secret_file(
        "all.toml",
        f'[binance]\napi_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\n'
        '[binance-futures]\napi_key = "futures-key-0123456789"\napi_secret = "fs"\n',
    )
    assert load_credentials("binance", key_file=path).secret == API_SECRET
    futures = load_credentials("binance-futures", key_file=path)
    assert (futures.api_key, futures.secret) == ("futures-key-0123456789", "fs")


def test_key_file_with_a_private_key_file_beside_it(secret_file) -> None:
    secret_file("ed.pem", ED25519_PEM)
    path = secret_file("ed.toml", f'api_key = "{API_KEY}"\nprivate_key_file = "ed.pem"\n')
    creds = load_credentials("binance", key_file=path)
    assert (creds.kind, creds.private_key_pem) == ("ed25519", ED25519_PEM)


def test_key_file_with_an_inline_private_key(secret_file) -> None:
    path = secret_file(
        "ed.toml", f'api_key = "{API_KEY}"\nprivate_key = """\n{ED25519_PEM.decode()}"""\n'
    )
    assert load_credentials("binance", key_file=path).private_key_pem == ED25519_PEM


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601, 0o610])
def test_key_file_others_may_read_is_refused_with_its_mode(secret_file, mode) -> None:
    path = secret_file("k.toml", f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\n', mode)
    with pytest.raises(UsageError) as err:
        load_credentials("binance", key_file=path)
    assert str(err.value) == (
        f"key file {path} has mode {mode:04o}: group or others have access to it; "
        f"allow only its owner (chmod 600 {path})"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(secret_file, mode) -> None:
    path = secret_file("k.toml", f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\n', mode)
    assert load_credentials("binance", key_file=path).secret == API_SECRET


def test_pem_file_others_may_read_is_refused(secret_file) -> None:
    pem = secret_file("k.pem", ED25519_PEM, 0o644)
    env = {"COCKPIT_BINANCE_API_KEY": API_KEY, "COCKPIT_BINANCE_PRIVATE_KEY_FILE": str(pem)}
    with pytest.raises(UsageError, match=f"private key file {pem} has mode 0644"):
        load_credentials("binance", env=env)


def test_key_file_of_another_user_is_refused(secret_file, monkeypatch) -> None:
    path = secret_file("k.toml", f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\n')
    me = os.getuid()
    monkeypatch.setattr(secrets.os, "getuid", lambda: me + 1)
    with pytest.raises(UsageError) as err:
        load_credentials("binance", key_file=path)
    assert str(err.value) == (
        f"key file {path} is owned by uid {me}, not by you (uid {me + 1}); "
        "a secret must be in a file of your own"
    )


def test_missing_key_file_and_directory(tmp_path) -> None:
    with pytest.raises(UsageError, match=f"key file {tmp_path / 'nope'} does not exist"):
        load_credentials("binance", key_file=tmp_path / "nope")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(UsageError, match="is not a regular file"):
        load_credentials("binance", key_file=tmp_path)


def test_malformed_key_file_names_the_line_but_never_its_text(secret_file) -> None:
    # A pasted secret on a line of its own: base64 with '=' padding parses as "name = ''".
    path = secret_file("k", f"api_key = {API_KEY}\n{API_SECRET}+/==\n")
    with pytest.raises(UsageError) as err:
        load_credentials("binance", key_file=path)
    assert str(err.value) == f"key file {path}, line 2: expected `name = value`"


def test_unknown_names_are_shown_only_when_they_look_like_names(secret_file) -> None:
    path = secret_file("k", f"api_key = {API_KEY}\napi_secret = x\nsekret = {API_SECRET}\n")
    with pytest.raises(UsageError, match="unknown name 'sekret'; expected api_key"):
        load_credentials("binance", key_file=path)


def test_key_file_needs_exactly_one_kind_of_secret(secret_file) -> None:
    path = secret_file("k.toml", f'api_key = "{API_KEY}"\n')
    with pytest.raises(UsageError, match="exactly one of api_secret .* found none"):
        load_credentials("binance", key_file=path)
    both = secret_file("b.toml", f'api_key = "{API_KEY}"\napi_secret = "a"\nprivate_key = "b"\n')
    with pytest.raises(UsageError, match="found api_secret, private_key"):
        load_credentials("binance", key_file=both)


# --- never shown ------------------------------------------------------------------------------


def test_repr_and_str_hide_the_secret_and_most_of_the_key() -> None:
    creds = hmac_creds()
    expected = "Credentials(venue='binance', api_key='vmPU…', secret=<hidden>)"
    assert repr(creds) == expected
    assert str(creds) == expected
    assert f"{creds}" == expected
    assert repr([creds]) == f"[{expected}]"
    assert "<hidden>" in repr(Credentials("b", "k", private_key_pem=ED25519_PEM))
    assert repr(Credentials("b", "short-key", secret="s")) == (
        "Credentials(venue='b', api_key='…', secret=<hidden>)"
    )


def test_credentials_are_read_only_and_cannot_be_pickled() -> None:
    import pickle

    creds = hmac_creds()
    with pytest.raises(AttributeError):
        creds.secret = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(creds)


def test_credentials_need_exactly_one_secret() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        Credentials("binance", API_KEY)
    with pytest.raises(UsageError, match="exactly one"):
        Credentials("binance", API_KEY, secret="s", private_key_pem=ED25519_PEM)
    with pytest.raises(UsageError, match="API key is empty"):
        Credentials("binance", "", secret="s")


# --- redaction --------------------------------------------------------------------------------


def test_redact_signature_query_parameter_without_credentials() -> None:
    assert redact(REST_URL) == REST_URL.replace(
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71", "***"
    )
    assert redact("a=1&signature=abc%2B%2F%3D&b=2") == "a=1&signature=***&b=2"


def test_redact_json_and_dict_fields() -> None:
    body = (
        '{"apiKey": "vmPU", "price": "0.1", "signature":"c8db\\"x", '
        "'secretKey': 'abc', 'X-MBX-APIKEY': 'k'}"
    )
    assert redact(body) == (
        '{"apiKey": "***", "price": "0.1", "signature":"***", '
        "'secretKey': '***', 'X-MBX-APIKEY': '***'}"
    )


def test_redact_header_line() -> None:
    assert redact("X-MBX-APIKEY: abcdef\nHost: x") == "X-MBX-APIKEY: ***\nHost: x"


def test_redact_credentials_anywhere_raw_or_percent_encoded() -> None:
    creds = Credentials("binance", API_KEY, secret="se/cr+et=", source="t")
    text = f"key {API_KEY} in text, secret se/cr+et= and se%2Fcr%2Bet%3D in a url"
    assert redact(text, creds) == "key *** in text, secret *** and *** in a url"


def test_redact_private_key_body() -> None:
    creds = Credentials("binance", API_KEY, private_key_pem=ED25519_PEM)
    assert redact(f"loaded {ED25519_PEM.decode()}", creds) == (
        "loaded -----BEGIN PRIVATE KEY-----\n***\n-----END PRIVATE KEY-----\n"
    )
    assert ED25519_PEM_BODY in creds.secret_strings()


def test_redact_is_idempotent() -> None:
    once = redact(REST_URL + ' {"signature": "x"}', hmac_creds())
    assert redact(once, hmac_creds()) == once


def test_logging_filter_redacts_message_args_and_traceback(caplog) -> None:
    caplog.handler.addFilter(RedactingFilter(hmac_creds()))
    log = logging.getLogger("adapters.live.test")
    raw_url = REST_URL.replace("symbol", f"apiKey={API_KEY}&symbol")
    log.debug("GET %s secret %s", raw_url, API_SECRET)
    try:
        raise RuntimeError(f"rejected {raw_url} with secret {API_SECRET}")
    except RuntimeError:
        log.exception("request failed")
    first, second = caplog.records
    assert first.getMessage() == (
        "GET https://api.binance.com/api/v3/order?apiKey=***&symbol=LTCBTC&side=BUY"
        "&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559&signature=*** secret ***"
    )
    assert second.exc_info is None
    assert second.exc_text.endswith(
        "RuntimeError: rejected https://api.binance.com/api/v3/order?apiKey=***&symbol=LTCBTC"
        "&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559&signature=*** with secret ***"
    )
    assert API_SECRET not in caplog.text and API_KEY not in caplog.text
    assert caplog.text.count("***") == 6


def test_redacted_errors_wraps_and_does_not_chain() -> None:
    url = REST_URL + f"&apiKey={API_KEY}"
    with pytest.raises(VenueRequestError) as err:
        with redacted_errors("placing order ck-1", hmac_creds()):
            raise ConnectionError(f"cannot reach {url}, secret {API_SECRET}")
    message = str(err.value)
    assert message.startswith("placing order ck-1: ConnectionError: cannot reach https://")
    assert message.endswith("&signature=***&apiKey=***, secret ***")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    # Python links the original as __context__ anyway: it is left with nothing to show.
    original = err.value.__context__
    assert isinstance(original, ConnectionError)
    assert (str(original), original.args, original.__traceback__) == ("", (), None)
    printed = "".join(traceback.format_exception(err.value))
    assert API_SECRET not in printed and API_KEY not in printed and "c8db5682" not in printed
    assert isinstance(err.value, CockpitError)


def test_redacted_errors_passes_success_through() -> None:
    with redacted_errors("nothing"):
        value = 42
    assert value == 42


def test_venue_request_error_for_request() -> None:
    err = VenueRequestError.for_request(
        "POST",
        "https://api.binance.com/api/v3/order",
        "HTTP 400 -1022 Signature for this request is not valid.",
        body=b"symbol=LTCBTC&timestamp=1&signature=abcdef",
        creds=hmac_creds(),
    )
    assert str(err) == (
        "POST https://api.binance.com/api/v3/order body symbol=LTCBTC&timestamp=1"
        "&signature=***: HTTP 400 -1022 Signature for this request is not valid."
    )
    assert err.title == "Venue request failed"
