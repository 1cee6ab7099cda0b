"""API credentials: where they come from, and how they stay out of logs and messages.

Sources, in order (the first one present is used, and sources are never mixed):

1. an explicit key file (`load_credentials(venue, key_file=PATH)`);
2. `COCKPIT_<VENUE>_KEY_FILE`: the path of a key file;
3. `COCKPIT_<VENUE>_API_KEY` with either `COCKPIT_<VENUE>_API_SECRET` (HMAC-SHA256) or
   `COCKPIT_<VENUE>_PRIVATE_KEY_FILE` (an Ed25519 private key, PEM).

`<VENUE>` is the venue name in capitals with `-` as `_` (`binance-futures` reads
`COCKPIT_BINANCE_FUTURES_API_KEY`).

A key file is TOML (`api_key = "..."`) or plain `name = value` lines (`#` starts a comment);
its names are `api_key` with `api_secret`, `private_key_file` (relative to the key file) or
`private_key` (the PEM text, a TOML multi-line string). A TOML file may hold several venues as
tables (`[binance]`, `[binance-futures]`). Every file holding a secret (the key file, the PEM
file) must be a regular file owned by the current user with no permission bits for group or
others (`chmod 600`); anything else is refused before a byte is read, with a message naming
the file and its mode. No message ever quotes a file's contents.

`Credentials` never shows its secrets: `repr()` and `str()` give
`Credentials(venue='binance', api_key='vmPU…', secret=<hidden>)`. `redact()`,
`RedactingFilter` (for logging handlers) and `redacted_errors()` (for exceptions) replace the
API key, the secret, the PEM body and any `signature`, `apiKey`, `secret` or `X-MBX-APIKEY`
field of a query string, a header or a JSON/dict body with `***`.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote

from engine.errors import CockpitError, UsageError

MASK: Final = "***"
"""What every redacted value becomes."""

MAX_SECRET_FILE_BYTES: Final = 64 * 1024
"""A key or PEM file is a few hundred bytes; anything this large is the wrong file."""

KEY_FILE_NAMES: Final = ("api_key", "api_secret", "private_key_file", "private_key")

_VENUE: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_NAME_SHOWN: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")

# Field names whose values are secret wherever they appear (query string, header, JSON, repr).
_FIELDS: Final = (
    r"signature|api[_-]?key|x-mbx-apikey|secret|secret[_-]?key|api[_-]?secret"
    r"|private[_-]?key|listen[_-]?key"
)
# name=value in a query string or form body, and `name: value` in a header line.
_PAIR: Final = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_FIELDS})(=|:[ \t]*)(?!\*\*\*|<hidden>)([^&\s\"',;:}}]+)"
)
# "name": "value" (JSON) and 'name': 'value' (a Python dict's repr).
_QUOTED: Final = re.compile(rf"""(?i)(["'])({_FIELDS})\1(\s*:\s*)(["'])(?:\\.|(?!\4).)*\4""")


def mask_key(api_key: str) -> str:
    """The first four characters of an API key and an ellipsis (nothing of a short key)."""
    return api_key[:4] + "…" if len(api_key) >= 16 else "…"


class Credentials:
    """An API key with its HMAC secret or Ed25519 private key; never shown in full.

    Attributes are read-only. `repr()`/`str()` show the venue, the first four characters of
    the API key and `<hidden>`; `source` says where the credentials came from (a path or the
    names of the environment variables), for messages.
    """

    __slots__ = ("_venue", "_api_key", "_secret", "_private_key_pem", "_source")

    def __init__(
        self,
        venue: str,
        api_key: str,
        *,
        secret: str | None = None,
        private_key_pem: bytes | None = None,
        source: str = "",
    ) -> None:
        where = source or venue
        if not api_key:
            raise UsageError(f"{where}: the API key is empty")
        if (secret is None) == (private_key_pem is None):
            raise UsageError(
                f"{where}: give either an API secret (HMAC) or a private key (Ed25519), "
                "exactly one of them"
            )
        if secret is not None and not secret:
            raise UsageError(f"{where}: the API secret is empty")
        object.__setattr__(self, "_venue", venue)
        object.__setattr__(self, "_api_key", api_key)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_private_key_pem", private_key_pem)
        object.__setattr__(self, "_source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are read-only")

    @property
    def venue(self) -> str:
        """The venue these credentials are for."""
        return self._venue

    @property
    def api_key(self) -> str:
        """The API key (sent in a header or a request parameter)."""
        return self._api_key

    @property
    def secret(self) -> str | None:
        """The HMAC secret, or None for an Ed25519 key."""
        return self._secret

    @property
    def private_key_pem(self) -> bytes | None:
        """The Ed25519 private key (PEM), or None for an HMAC key."""
        return self._private_key_pem

    @property
    def source(self) -> str:
        """Where the credentials came from (a path, environment variable names), for messages."""
        return self._source

    @property
    def kind(self) -> Literal["hmac", "ed25519"]:
        """How requests are signed with these credentials."""
        return "hmac" if self._secret is not None else "ed25519"

    def secret_strings(self) -> tuple[str, ...]:
        """Every string `redact` removes: the key, the secret, the PEM body and its lines."""
        out = [self._api_key]
        if self._secret is not None:
            out.append(self._secret)
        if self._private_key_pem is not None:
            lines = [
                ln.strip()
                for ln in self._private_key_pem.decode("ascii", "replace").splitlines()
                if ln.strip() and not ln.startswith("-----")
            ]
            out.extend(lines)
            out.append("".join(lines))
        # The same strings percent-encoded, as they would appear inside a URL.
        out.extend([quote(s, safe="") for s in out])
        return tuple(sorted({s for s in out if s}, key=len, reverse=True))

    def __repr__(self) -> str:
        return (
            f"Credentials(venue={self._venue!r}, api_key={mask_key(self._api_key)!r}, "
            "secret=<hidden>)"
        )

    __str__ = __repr__

    def __reduce__(self) -> object:
        # Pickling would write the secret wherever the pickle goes (a process pool, a cache).
        raise TypeError("Credentials cannot be pickled")


def env_names(venue: str) -> dict[str, str]:
    """The environment variables read for `venue`, by role (api_key, api_secret, ...)."""
    if not _VENUE.fullmatch(venue):
        raise UsageError(
            f"venue name {venue!r}: expected lower-case letters, digits, '-' or '_' "
            "(at most 32, starting with a letter)"
        )
    stem = "COCKPIT_" + venue.upper().replace("-", "_")
    return {
        "api_key": f"{stem}_API_KEY",
        "api_secret": f"{stem}_API_SECRET",
        "private_key_file": f"{stem}_PRIVATE_KEY_FILE",
        "key_file": f"{stem}_KEY_FILE",
    }


def load_credentials(
    venue: str,
    env: Mapping[str, str] = os.environ,
    key_file: Path | str | None = None,
) -> Credentials:
    """The credentials for `venue` from a key file or the environment (see the module doc).

    Args:
        venue: venue name, e.g. "binance" (names the environment variables).
        env: the environment to read (tests pass a dict).
        key_file: read this key file and ignore the environment.

    Raises:
        UsageError: nothing found, an ambiguous or incomplete set of variables, a file that
            others may read or that is not yours, or a malformed key file (by line number,
            never quoting it).
    """
    names = env_names(venue)
    if key_file is not None:
        return _from_key_file(venue, Path(key_file))
    values = {role: env.get(name, "").strip() for role, name in names.items()}
    in_env = [names[r] for r in ("api_key", "api_secret", "private_key_file") if values[r]]
    if values["key_file"]:
        if in_env:
            raise UsageError(
                f"both {names['key_file']} and {', '.join(in_env)} are set: "
                "use the key file or the variables, not both"
            )
        return _from_key_file(venue, Path(values["key_file"]).expanduser())
    if not in_env:
        raise UsageError(
            f"no credentials for {venue}: set {names['api_key']} with {names['api_secret']} "
            f"(HMAC) or {names['private_key_file']} (Ed25519 PEM), or {names['key_file']} "
            "(a key file readable only by you)"
        )
    source = f"environment ({names['api_key']})"
    if not values["api_key"]:
        raise UsageError(f"{', '.join(in_env)} set but {names['api_key']} is missing or empty")
    if values["api_secret"] and values["private_key_file"]:
        raise UsageError(
            f"both {names['api_secret']} and {names['private_key_file']} are set: "
            "an API key is either HMAC or Ed25519"
        )
    if values["api_secret"]:
        return Credentials(venue, values["api_key"], secret=values["api_secret"], source=source)
    if values["private_key_file"]:
        pem = _read_pem(Path(values["private_key_file"]).expanduser())
        return Credentials(venue, values["api_key"], private_key_pem=pem, source=source)
    raise UsageError(
        f"{names['api_key']} is set but neither {names['api_secret']} (HMAC) nor "
        f"{names['private_key_file']} (Ed25519) is"
    )


def read_owner_only(path: Path, what: str = "key file") -> bytes:
    """The bytes of a regular file that only its owner (the current user) may access.

    The file is opened first and checked through the open descriptor, so it cannot be
    swapped between the check and the read.

    Raises:
        UsageError: missing, unreadable, not a regular file, owned by another user, or
            with any permission bit for group or others (the message gives the mode).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except PermissionError:
        raise UsageError(f"{what} {path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise UsageError(f"{what} {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{what} {path} is not a regular file")
        uid = os.getuid()
        if st.st_uid != uid:
            raise UsageError(
                f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {uid}); "
                "a secret must be in a file of your own"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise UsageError(
                f"{what} {path} has mode {mode:04o}: group or others have access to it; "
                f"allow only its owner (chmod 600 {path})"
            )
        if st.st_size > MAX_SECRET_FILE_BYTES:
            raise UsageError(
                f"{what} {path} is {st.st_size} bytes, more than a key file "
                f"({MAX_SECRET_FILE_BYTES} at most): is it the right file?"
            )
        chunks = []
        while chunk := os.read(fd, MAX_SECRET_FILE_BYTES + 1):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_pem(path: Path) -> bytes:
    pem = read_owner_only(path, "private key file")
    if b"-----BEGIN" not in pem:
        raise UsageError(f"private key file {path} is not PEM (no '-----BEGIN' line)")
    return pem


def _from_key_file(venue: str, path: Path) -> Credentials:
    raw = read_owner_only(path, "key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"key file {path} is not UTF-8 text (byte {exc.start})") from None
    fields = _parse_key_file(text, path, venue)
    unknown = sorted(set(fields) - set(KEY_FILE_NAMES))
    if unknown:
        shown = [repr(n) for n in unknown if _NAME_SHOWN.fullmatch(n)]
        raise UsageError(
            f"key file {path}: unknown name {', '.join(shown) or '(not shown)'}; "
            f"expected {', '.join(KEY_FILE_NAMES)}"
        )
    for name, value in fields.items():
        if not isinstance(value, str):
            raise UsageError(f"key file {path}: {name} must be a string")
    api_key = fields.get("api_key", "").strip()
    if not api_key:
        raise UsageError(f"key file {path}: api_key is missing or empty")
    given = [n for n in ("api_secret", "private_key_file", "private_key") if fields.get(n)]
    if len(given) != 1:
        raise UsageError(
            f"key file {path}: give exactly one of api_secret (HMAC), private_key_file or "
            f"private_key (Ed25519); found {', '.join(given) or 'none'}"
        )
    source = str(path)
    if given[0] == "api_secret":
        return Credentials(venue, api_key, secret=fields["api_secret"].strip(), source=source)
    if given[0] == "private_key_file":
        pem_path = path.parent / Path(fields["private_key_file"].strip()).expanduser()
        return Credentials(venue, api_key, private_key_pem=_read_pem(pem_path), source=source)
    pem = fields["private_key"].strip().encode("ascii", "replace") + b"\n"
    if b"-----BEGIN" not in pem:
        raise UsageError(f"key file {path}: private_key is not PEM (no '-----BEGIN' line)")
    return Credentials(venue, api_key, private_key_pem=pem, source=source)


def _parse_key_file(text: str, path: Path, venue: str) -> dict[str, object]:
    """TOML if it parses (a table named after the venue wins), else `name = value` lines."""
    try:
        data: dict[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return _parse_lines(text, path)
    table = data.get(venue)
    if isinstance(table, dict):
        return table
    return {k: v for k, v in data.items() if not isinstance(v, dict)}


def _parse_lines(text: str, path: Path) -> dict[str, object]:
    fields: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        name, value = name.strip(), value.strip()
        # The line may be a pasted secret: messages give its number, never its text.
        if not eq or not _NAME_SHOWN.fullmatch(name):
            raise UsageError(f"key file {path}, line {number}: expected `name = value`")
        if name in fields:
            raise UsageError(f"key file {path}, line {number}: {name} given twice")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[name] = value
    return fields


# --- redaction ----------------------------------------------------------------------------


def _secret_strings(creds: Credentials | Iterable[Credentials] | None) -> list[str]:
    if creds is None:
        return []
    if isinstance(creds, Credentials):
        return list(creds.secret_strings())
    return sorted({s for c in creds for s in c.secret_strings()}, key=len, reverse=True)


def redact(text: str, creds: Credentials | Iterable[Credentials] | None = None) -> str:
    """`text` with the credentials' secrets and every secret-named field replaced by `***`.

    Without credentials only the named fields (signature, apiKey, secret, X-MBX-APIKEY,
    listenKey, ...) are masked; with them, the key, the secret and the PEM body are masked
    wherever they appear, percent-encoded or not.
    """
    for s in _secret_strings(creds):
        text = text.replace(s, MASK)
    text = _PAIR.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    return _QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{MASK}{m[4]}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message, exception and stack text.

    Attach it to every handler (`handler.addFilter(RedactingFilter(creds))`): a filter on a
    logger only sees records logged on that very logger, not those of its children. The
    record is rewritten in place (message formatted with its arguments, the traceback
    rendered to `exc_text` and `exc_info` dropped so no handler renders the raw traceback).
    """

    def __init__(self, creds: Credentials | Iterable[Credentials] | None = None) -> None:
        super().__init__()
        self._creds = creds if creds is None or isinstance(creds, Credentials) else list(creds)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad format arguments: still never let the raw text through
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message, self._creds)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._creds)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._creds)
        return True


class VenueRequestError(CockpitError):
    """A request to the venue failed; the message is redacted (no key, secret or signature)."""

    title = "Venue request failed"

    @classmethod
    def for_request(
        cls,
        method: str,
        url: str,
        reason: str,
        *,
        body: str | bytes | None = None,
        creds: Credentials | None = None,
    ) -> VenueRequestError:
        """The error for `method url [body]` failing with `reason`, all of it redacted."""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        text = f"{method} {url}" + (f" body {body}" if body else "") + f": {reason}"
        return cls(redact(text, creds))


@contextmanager
def redacted_errors(what: str, creds: Credentials | None = None) -> Iterator[None]:
    """Turn any exception raised inside into a `VenueRequestError` with a redacted message.

    HTTP and WebSocket libraries put the request URL (with its `signature`) and sometimes
    the body in their messages. The original exception is suppressed (`from None`, so no
    traceback printer shows it) and scrubbed: Python still links it as `__context__`, so
    its arguments and its traceback (whose frames hold the request's local variables) are
    dropped.

    Args:
        what: what was being done, the start of the message ("placing order ck-12").
    """
    try:
        yield
    except Exception as exc:
        message = redact(f"{what}: {type(exc).__name__}: {exc}", creds)
        exc.args = ()
        exc.__traceback__ = None
        raise VenueRequestError(message) from None
