"""What one import file may hold, and the bounded reading that enforces it.

A file is refused, with nothing written, when it unpacks to more bytes than
`AEGIS_MAX_IMPORT_BYTES`, holds a line (a record) longer than
`AEGIS_MAX_IMPORT_LINE_BYTES`, a text field longer than `AEGIS_MAX_IMPORT_FIELD_CHARS`
characters, or JSON nested deeper than `AEGIS_MAX_IMPORT_JSON_DEPTH`. Bytes are
counted as they are unpacked and lines are read with a bounded readline, so a gzip
bomb or a file of one endless line costs no more memory than the line limit.
"""

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings


@dataclass(frozen=True)
class Limits:
    """The limits of one import (settings AEGIS_MAX_IMPORT_*)."""

    bytes: int = 2 * 1024**3
    line_bytes: int = 8 * 1024**2
    field_chars: int = 1024**2
    json_depth: int = 64

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            bytes=settings.AEGIS_MAX_IMPORT_BYTES,
            line_bytes=settings.AEGIS_MAX_IMPORT_LINE_BYTES,
            field_chars=settings.AEGIS_MAX_IMPORT_FIELD_CHARS,
            json_depth=settings.AEGIS_MAX_IMPORT_JSON_DEPTH,
        )

    def too_big(self) -> str:
        return (
            f"the file unpacks to more than {size(self.bytes)} "
            "(AEGIS_MAX_IMPORT_BYTES); split it into smaller files"
        )

    def too_long(self, unit: str) -> str:
        return (
            f"the {unit} is longer than {size(self.line_bytes)} "
            "(AEGIS_MAX_IMPORT_LINE_BYTES)"
        )

    def too_deep(self) -> str:
        return (
            f"JSON nested deeper than {self.json_depth} levels "
            "(AEGIS_MAX_IMPORT_JSON_DEPTH)"
        )

    def field_too_long(self, chars: int) -> str:
        return (
            f"is {chars:,} characters long, more than {self.field_chars:,} "
            "(AEGIS_MAX_IMPORT_FIELD_CHARS)"
        )


def size(n: int) -> str:
    """A byte count as people write it: 2 GiB, 8 MiB, 1,000 bytes."""
    for unit, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n:,} bytes"


class LimitExceeded(Exception):
    """The file unpacked to more bytes than the import allows."""


class _Metered(io.BufferedIOBase):
    """A binary stream that refuses to hand out more than `limit` bytes in all.

    It passes each call on (no read-ahead of its own), so a reader sees the stream's
    bytes and errors at the same place as without it."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.total = 0

    def _counted(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self._limit:
            raise LimitExceeded
        return data

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._counted(self._inner.read(-1 if size is None else size))

    def read1(self, size: int = -1) -> bytes:
        return self._counted(self._inner.read1(size))  # type: ignore[attr-defined]

    def readline(self, size: int | None = -1) -> bytes:
        return self._counted(self._inner.readline(-1 if size is None else size))

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def metered(inner: BinaryIO, limit: int) -> BinaryIO:
    """`inner`, raising LimitExceeded once more than `limit` bytes are read from it
    (counted as unpacked when `inner` is a GzipFile)."""
    return _Metered(inner, limit)  # type: ignore[return-value]


# --- JSON nesting, without recursion ------------------------------------------------

# Outside strings only brackets and quotes matter; a string runs to its first
# unescaped quote (possessive, so an unfinished one fails in linear time). Each
# pattern comes for bytes (a line read) and for text (a decoded chunk, a cell).
_STRUCTURE: dict[type, re.Pattern[Any]] = {
    bytes: re.compile(rb'["\[\]{}]'),
    str: re.compile(r'["\[\]{}]'),
}
_STRING_REST: dict[type, re.Pattern[Any]] = {
    bytes: re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL),
    str: re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL),
}
_SCALAR_END: dict[type, re.Pattern[Any]] = {
    bytes: re.compile(rb"[,\]}\s]"),
    str: re.compile(r"[,\]}\s]"),
}
_QUOTE = ('"', b'"')
_OPEN = ("[", "{", b"[", b"{")


class TooDeep(Exception):
    """JSON nests deeper than allowed; `at` is the offset of the bracket too many."""

    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


def scan_json(
    data: bytes | str, pos: int, depth: int, max_depth: int
) -> tuple[int, int, bool]:
    """Walk a JSON value's brackets from `pos` at `depth` until it closes.

    Returns (offset, depth, closed): just past the closing bracket when closed, else
    where to resume once more data has come (an unfinished string's quote, or the
    end). Raises TooDeep past `max_depth`. Never recurses, so any depth is safe.
    """
    structure, string_rest = _STRUCTURE[type(data)], _STRING_REST[type(data)]
    while (found := structure.search(data, pos)) is not None:
        at = found.start()
        char = data[at : at + 1]
        if char in _QUOTE:  # a string: skip it whole
            string = string_rest.match(data, at + 1)
            if string is None:
                return at, depth, False
            pos = string.end()
            continue
        if char in _OPEN:
            depth += 1
            if depth > max_depth:
                raise TooDeep(at)
        else:
            depth -= 1
            if depth <= 0:
                return at + 1, depth, True
        pos = at + 1
    return len(data), depth, False


def nests_deeper(text: str | bytes, max_depth: int) -> int | None:
    """The offset where JSON `text` nests deeper than `max_depth`, or None.

    Counting brackets first (a bound, quotes aside) spares almost every line the walk.
    """
    if isinstance(text, str):
        brackets = text.count("[") + text.count("{")
    else:
        brackets = text.count(b"[") + text.count(b"{")
    if brackets <= max_depth:
        return None
    try:
        scan_json(text, 0, 0, max_depth)
    except TooDeep as exc:
        return exc.at
    return None


# --- text fields -------------------------------------------------------------------


def longest_text(data: dict[str, Any]) -> tuple[str, int, int]:
    """(path, length) of the record's longest text value, and all its text's length.

    Paths read as the parsers name fields: `prompt`, `turns[2].content`, `data.text`.
    Walked with a stack, not recursion.
    """
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in data.items()]
    longest, longest_path, total = -1, "", 0
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            total += len(value)
            if len(value) > longest:
                longest, longest_path = len(value), path
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value, start=1))
    return longest_path, max(longest, 0), total


def bounded_lines(
    fh: io.TextIOBase, record: list[int], line_bytes: int
) -> Iterator[str]:
    """The lines of a text stream, each read with a bounded readline; `record[0]`
    adds up the bytes since the caller last reset it (one CSV record's lines) and
    LineTooLong is raised once that passes `line_bytes`."""
    while line := fh.readline(line_bytes + 1):
        record[0] += len(line) if line.isascii() else len(line.encode("utf-8"))
        if record[0] > line_bytes:
            raise LineTooLong
        yield line


class LineTooLong(Exception):
    """A line (a record) is longer than the import allows."""


def scan_scalar(data: bytes | str, pos: int) -> tuple[int, bool]:
    """Where the string, number or literal at `pos` ends: (offset, closed), as
    `scan_json` says it."""
    if data[pos : pos + 1] in _QUOTE:
        string = _STRING_REST[type(data)].match(data, pos + 1)
        return (string.end(), True) if string else (len(data), False)
    found = _SCALAR_END[type(data)].search(data, pos)
    return (found.start(), True) if found else (len(data), False)
