"""Read records from dataset files, each with the line (or row) it came from.

Readers stream: a JSONL, JSON or CSV file of any size is read a record at a time,
within the limits of `annotation.imports.limits` (bytes unpacked, bytes per line,
characters per field, JSON depth). Errors carry the file and line, so a user can
open the file at the right place.
"""

import codecs
import csv
import gzip
import io
import json
import re
import shlex
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from annotation.imports.limits import (
    LimitExceeded,
    Limits,
    LineTooLong,
    TooDeep,
    bounded_lines,
    longest_text,
    metered,
    nests_deeper,
    scan_json,
    scan_scalar,
)

GZIP_MAGIC = b"\x1f\x8b"
# Dialogue cells can be long (a transcript): the csv module's 128 KiB cap is too low.
# A field is bounded by its record's limit (AEGIS_MAX_IMPORT_LINE_BYTES) instead.
csv.field_size_limit(2**31 - 1)
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class RowError:
    """What is wrong with one record; `line` is 1-based (a row number for Parquet).

    `line` is None for a file-level error: the file as a whole cannot be read (not
    UTF-8, truncated, corrupt), so there is no row to skip or to point at. A `fatal`
    error has a line but stops the import too: the file passed one of the import's
    limits there, and reading on would cost the server what the limit protects.
    """

    file: str
    line: int | None
    field: str
    message: str
    fatal: bool = False

    @property
    def file_level(self) -> bool:
        return self.line is None

    @property
    def stops_import(self) -> bool:
        """Whether this error stops the import even when bad rows are skipped."""
        return self.line is None or self.fatal

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
        }

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            unit = "row" if ".parquet" in self.file.lower() else "line"
            parts.append(f"{unit} {self.line}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return f"{', '.join(parts)}: {self.message}"


class FileFormatError(Exception):
    """The file as a whole cannot be read (not the format it claims, truncated, ...)."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Record:
    line: int
    data: dict[str, Any]


@dataclass
class Source:
    """A file to read: its path, the name errors show, and what its bytes look like."""

    path: Path
    display_name: str
    compressed: bool = False
    container: str = ""  # jsonl, json, csv, parquet
    extras: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits.from_settings)
    # Why the file cannot be read at all, found while sniffing (a .gz that is not).
    problem: RowError | None = None

    def open_raw(self) -> BinaryIO:
        """The file's bytes, unpacked, seekable and not counted (for Parquet)."""
        if self.compressed:
            # Opened by name so that closing the GzipFile closes the file too.
            return gzip.GzipFile(self.path, "rb")  # type: ignore[return-value]
        return self.path.open("rb")

    def open_binary(self) -> BinaryIO:
        """The file's bytes, unpacked; LimitExceeded past the import's byte limit."""
        return metered(self.open_raw(), self.limits.bytes)

    def open_text(self) -> io.TextIOWrapper:
        # utf-8-sig: spreadsheets often write a byte-order mark before the header.
        return io.TextIOWrapper(self.open_binary(), encoding="utf-8-sig", newline="")


def sniff(path: Path, display_name: str | None = None) -> Source:
    """Work out compression and container (jsonl, json, csv, parquet) of a file."""
    name = display_name or path.name
    with path.open("rb") as fh:
        head = fh.read(4)
    compressed = head[:2] == GZIP_MAGIC
    source = Source(path=path, display_name=name, compressed=compressed)
    stem = name.lower()
    if stem.endswith(".gz"):
        stem = stem[:-3]
        if not compressed:
            source.problem = RowError(
                name,
                None,
                "",
                "the name ends in .gz but the file is not gzip-compressed (it does "
                "not start with the gzip signature 1f 8b): compress it with gzip, "
                "or upload it without the .gz",
            )
            source.container = "jsonl"
            return source
    if head == PARQUET_MAGIC or stem.endswith(".parquet"):
        source.container = "parquet"
    elif stem.endswith(".jsonl") or stem.endswith(".ndjson"):
        source.container = "jsonl"
    elif stem.endswith(".json"):
        source.container = "json"
    elif stem.endswith(".csv") or stem.endswith(".tsv"):
        source.container = "csv"
    else:
        source.container = _sniff_content(source)
    return source


def _sniff_content(source: Source) -> str:
    try:
        with source.open_text() as fh:
            start = fh.read(4096).lstrip()
    except (UnicodeDecodeError, OSError, EOFError, LimitExceeded):
        return "csv"
    if start.startswith("["):
        return "json"
    if start.startswith("{"):
        return "jsonl"
    return "csv"


def read_records(source: Source) -> Iterator[Record | RowError]:
    """Yield each record of the file, or an error for a record that cannot be read."""
    readers = {
        "jsonl": _read_jsonl,
        "json": _read_json_array,
        "csv": _read_csv,
        "parquet": _read_parquet,
    }
    if source.problem is not None:
        yield source.problem
        return
    try:
        yield from readers[source.container](source)
    # zlib.error: a gzip file whose deflate stream is corrupt (not an OSError).
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield RowError(source.display_name, None, "", f"cannot read the file: {exc}")


def _fatal(source: Source, line: int, message: str) -> RowError:
    """An error at `line` that stops the import: the file passed a limit there."""
    return RowError(source.display_name, line, "", message, fatal=True)


def _checked_fields(
    source: Source, line: int, data: dict[str, Any], size: int
) -> Record | RowError:
    """The record, or the error of its longest text field when that passes the field
    limit. No text is longer than the bytes it was read from, so a record smaller
    than the limit (nearly all) is not walked."""
    limits = source.limits
    if size > limits.field_chars:
        path, chars, _ = longest_text(data)
        if chars > limits.field_chars:
            message = limits.field_too_long(chars)
            return RowError(source.display_name, line, path, message)
    return Record(line, data)


def _json_record(
    source: Source, line: int, raw: bytes, max_depth: int
) -> Record | RowError | None:
    """The JSON object in `raw` (a line, or an array's element) starting at `line`;
    None when the bytes are not UTF-8 (the file's error, not the line's)."""
    if (at := nests_deeper(raw, max_depth)) is not None:
        return _fatal(source, line + raw.count(b"\n", 0, at), source.limits.too_deep())
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        return None
    except json.JSONDecodeError as exc:
        return RowError(source.display_name, line, "", f"invalid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return RowError(source.display_name, line, "", "expected a JSON object")
    return _checked_fields(source, line, data, len(raw))


def _read_jsonl(source: Source) -> Iterator[Record | RowError]:
    """One JSON object per line, each line read with a bounded readline."""
    limits, number = source.limits, 0
    try:
        with source.open_binary() as fh:
            while raw := fh.readline(limits.line_bytes + 1):
                number += 1
                if len(raw) > limits.line_bytes and not raw.endswith(b"\n"):
                    yield _fatal(source, number, limits.too_long("line"))
                    return
                if not raw.strip():
                    continue
                item = _json_record(source, number, raw, limits.json_depth)
                if item is None:
                    # The encoding is the file's, not the line's: skipping such
                    # lines would quietly drop every row with an accent.
                    yield not_utf8(source)
                    return
                yield item
                if isinstance(item, RowError) and item.fatal:
                    return
    except LimitExceeded:
        yield _fatal(source, number + 1, limits.too_big())


_NOT_SPACE = re.compile(r"[^ \t\r\n]")


class _ArrayReader:
    """A JSON array file read an element at a time: memory holds one element (at
    most the line limit) and a chunk of the file, never the whole file."""

    CHUNK = 1 << 18

    def __init__(self, fh: BinaryIO, source: Source) -> None:
        self.fh, self.source, self.limits = fh, source, source.limits
        self.unicode = codecs.getincrementaldecoder("utf-8-sig")()
        self.json = json.JSONDecoder()
        self.text = ""
        self.pos = 0  # the next character not read yet
        self.eof = False
        self.line, self.counted = 1, 0  # the line of text[counted]

    def line_at(self, at: int) -> int:
        self.line += self.text.count("\n", self.counted, at)
        self.counted = at
        return self.line

    def more(self) -> bool:
        """Read the next chunk, dropping what is read; False at the end."""
        if self.eof:
            return False
        self.line_at(self.pos)
        chunk = self.fh.read(self.CHUNK)
        self.eof = not chunk
        self.text = self.text[self.pos :] + self.unicode.decode(chunk, self.eof)
        self.counted, self.pos = 0, 0
        return not self.eof

    def next_char(self) -> str | None:
        """The next character that is not whitespace (pos is left on it); None at
        the end."""
        while (found := _NOT_SPACE.search(self.text, self.pos)) is None:
            self.pos = len(self.text)
            if not self.more():
                return None
        self.pos = found.start()
        return self.text[self.pos]

    def value(self) -> tuple[Any, int]:
        """The JSON value at pos and its length; pos moves past it. Raises
        LineTooLong past the line limit, TooDeep past the depth limit (the array
        itself is one level) and JSONDecodeError when it is not JSON."""
        limits = self.limits
        while (found := self._attempt()) is None:
            if len(self.text) - self.pos > limits.line_bytes:
                raise LineTooLong
            self.more()
        data, end = found
        start = self.pos  # reading more moved the text, not the value's start
        if end - start > limits.line_bytes:
            raise LineTooLong
        brackets = self.text.count("[", start, end) + self.text.count("{", start, end)
        if brackets >= limits.json_depth and (
            nests_deeper(self.text[start:end], limits.json_depth - 1) is not None
        ):
            raise TooDeep(start)
        self.pos = end
        return data, end - start

    def _attempt(self) -> tuple[Any, int] | None:
        """The value at pos and its end; None when it may go on past what is read.
        The C decoder is the fast path; the bracket walk only runs at a chunk's end,
        to tell a value cut by the chunk from one that is not JSON."""
        try:
            data, end = self.json.raw_decode(self.text, self.pos)
        except RecursionError:
            raise TooDeep(self.pos) from None
        except json.JSONDecodeError:
            if self.eof or self._ends_in_buffer():
                raise
            return None
        if end == len(self.text) and not self.eof:
            return None  # a number may go on in the next chunk
        return data, end

    def _ends_in_buffer(self) -> bool:
        if self.text[self.pos] in "[{":
            depth = self.limits.json_depth - 1
            return scan_json(self.text, self.pos, 0, depth)[2]
        return scan_scalar(self.text, self.pos)[1]

    def records(self) -> Iterator[Record | RowError]:
        """Each element of the array, pos being just past its '['."""
        name = self.source.display_name
        if self.next_char() == "]":
            return
        while True:
            start = self.line_at(self.pos)
            try:
                data, size = self.value()
            except json.JSONDecodeError as exc:
                where = start + exc.doc.count("\n", self.pos, exc.pos)
                yield RowError(name, where, "", f"invalid JSON: {exc.msg}")
                return
            if isinstance(data, dict):
                yield _checked_fields(self.source, start, data, size)
            else:
                yield RowError(name, start, "", "expected a JSON object")
            after = self.next_char()
            if after == ",":
                self.pos += 1
                if self.next_char() is not None:
                    continue
            elif after == "]":
                return
            where = self.line_at(self.pos)
            yield RowError(name, where, "", "invalid JSON: expected ',' or ']'")
            return


def _read_json_array(source: Source) -> Iterator[Record | RowError]:
    """A JSON array of objects; each record's line is where its object starts."""
    limits = source.limits
    with source.open_binary() as fh:
        reader = _ArrayReader(fh, source)
        try:
            reader.more()
            first = reader.next_char()
            if first == "[":
                reader.pos += 1
                yield from reader.records()
                return
        except UnicodeDecodeError:
            yield not_utf8(source)
            return
        except LimitExceeded:
            yield _fatal(source, reader.line_at(reader.pos), limits.too_big())
            return
        except LineTooLong:
            yield _fatal(source, reader.line_at(reader.pos), limits.too_long("record"))
            return
        except TooDeep:
            yield _fatal(source, reader.line_at(reader.pos), limits.too_deep())
            return
    if first == "{":
        # A single object, or JSON lines saved as .json: read it as JSONL.
        source.container = "jsonl"
        yield from _read_jsonl(source)
        return
    yield RowError(source.display_name, reader.line, "", "expected a JSON array")


def _read_csv(source: Source) -> Iterator[Record | RowError]:
    """CSV (or TSV by its name) with a header; a record's lines are read bounded."""
    name = source.display_name.lower().removesuffix(".gz")
    dialect: type[csv.Dialect] = csv.excel_tab if name.endswith(".tsv") else csv.excel
    limits, size, start = source.limits, [0], 1
    try:
        with source.open_text() as fh:
            reader = csv.reader(
                bounded_lines(fh, size, limits.line_bytes), dialect=dialect
            )
            try:
                header = next(reader)
            except StopIteration:
                return
            header = [h.strip() for h in header]
            if len(set(header)) != len(header):
                dupes = sorted({h for h in header if header.count(h) > 1})
                yield RowError(
                    source.display_name,
                    1,
                    ",".join(dupes),
                    "column named twice in the header",
                )
                return
            start = reader.line_num + 1
            while True:
                size[0] = 0
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield RowError(
                        source.display_name, start, "", f"malformed CSV: {exc}"
                    )
                    return
                line = start
                start = reader.line_num + 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    yield RowError(
                        source.display_name,
                        line,
                        "",
                        f"has {len(row)} fields, the header has {len(header)}",
                    )
                    continue
                data = dict(zip(header, row, strict=True))
                yield _checked_fields(source, line, data, size[0])
    except UnicodeDecodeError:
        yield not_utf8(source)
    except LineTooLong:
        yield _fatal(source, start, limits.too_long("row"))
    except LimitExceeded:
        yield _fatal(source, start, limits.too_big())


def not_utf8(source: Source) -> RowError:
    """The file-level error of a file that is not UTF-8: its first bad byte, where it
    is, and how to convert the file (Excel's plain "CSV" is Windows-1252)."""
    found, encoding = "", "latin1"
    if (bad := _first_bad_byte(source)) is not None:
        byte, offset, line = bad
        found = f" (byte 0x{byte:02X} at offset {offset}, line {line})"
        if offset == 0 and byte in (0xFF, 0xFE):
            encoding = "utf-16"  # a UTF-16 byte-order mark ("Unicode text")
        elif 0x80 <= byte <= 0x9F:
            encoding = "cp1252"  # curly quotes and dashes: Windows, not Latin-1
    name = source.display_name
    stem, dot, suffix = name.removesuffix(".gz").rpartition(".")
    out = shlex.quote(f"{stem}-utf8.{suffix}" if dot else f"{name}-utf8")
    iconv = f"iconv -f {encoding} -t utf-8"
    if source.compressed:
        convert = f"zcat {shlex.quote(name)} | {iconv} > {out}"
    else:
        convert = f"{iconv} {shlex.quote(name)} > {out}"
    return RowError(
        name,
        None,
        "",
        f"not UTF-8 text{found}: save it as UTF-8 (in Excel: Save As “CSV UTF-8”) "
        f"or convert it, e.g. `{convert}`",
    )


def _first_bad_byte(source: Source) -> tuple[int, int, int] | None:
    """(byte, offset, line) of the first byte that is not UTF-8, offset 0-based in
    the (unpacked) data. Read in fixed chunks, so a file of one endless line costs
    no more memory than any other."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with source.open_raw() as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the bytes the decoder held back, then this chunk;
                # what it held back is part of one character, so has no newline.
                held = len(exc.object) - len(chunk)
                before = exc.object[: exc.start]
                return (
                    exc.object[exc.start],
                    offset - held + exc.start,
                    (line + before.count(b"\n")),
                )
            if not chunk:
                return None
            offset += len(chunk)
            line += chunk.count(b"\n")


def _read_parquet(source: Source) -> Iterator[Record | RowError]:
    """Parquet rows, in batches sized so that one holds about 64 MiB of data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    limits = source.limits
    try:
        with source.open_raw() as fh:
            table_file = pq.ParquetFile(fh)
            meta = table_file.metadata
            unpacked = sum(
                meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)
            )
            if unpacked > limits.bytes:
                yield RowError(source.display_name, None, "", limits.too_big())
                return
            per_row = max(1, unpacked // max(1, meta.num_rows))
            batch_size = max(1, min(4096, (64 << 20) // per_row))
            number = 0
            for batch in table_file.iter_batches(batch_size=batch_size):
                for data in batch.to_pylist():
                    number += 1
                    if longest_text(data)[2] > limits.line_bytes:
                        yield _fatal(source, number, limits.too_long("row"))
                        return
                    yield _checked_fields(source, number, data, limits.field_chars + 1)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        yield RowError(source.display_name, None, "", f"cannot read Parquet: {exc}")


def peek_columns(source: Source) -> tuple[list[str], dict[str, Any] | None]:
    """The column names and first record, for format detection."""
    for item in read_records(source):
        if isinstance(item, Record):
            return list(item.data.keys()), item.data
        return [], None
    return [], None


def count_records(source: Source) -> int | None:
    """A quick count for the progress bar (lines or rows); None when unknown."""
    if source.problem is not None:
        return None
    if source.container == "parquet":
        import pyarrow.parquet as pq

        try:
            with source.open_raw() as fh:
                return int(pq.ParquetFile(fh).metadata.num_rows)
        except Exception:
            return None
    if source.container == "jsonl":
        return _count_lines(source)
    return None


def _count_lines(source: Source) -> int | None:
    """The lines that are not blank, read as the import reads them (bounded); None
    when a line or the file passes its limit (the import then says so)."""
    limit, count = source.limits.line_bytes, 0
    try:
        with source.open_binary() as fh:
            while raw := fh.readline(limit + 1):
                if len(raw) > limit and not raw.endswith(b"\n"):
                    return None
                if raw.strip():
                    count += 1
    except (OSError, EOFError, zlib.error, LimitExceeded):
        return None
    return count
