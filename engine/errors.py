"""The project's exceptions: each names what was wrong and where, for a one-screen message."""

from __future__ import annotations


class CockpitError(Exception):
    """Base of every error the project raises on purpose; the CLI shows it without traceback."""

    title: str = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(CockpitError):
    """Wrong arguments or options (the CLI exits with code 2)."""

    title = "Usage error"


class DataError(CockpitError):
    """Bad input data: names the file, the row or line, the field and what was wrong."""

    title = "Bad input data"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        full = f"{', '.join(where)}: {message}" if where else message
        super().__init__(full)
        self.reason = message


class FormatError(DataError):
    """A file is not in the format it claims (bad magic, truncated, unknown columns)."""

    title = "Unreadable file"
