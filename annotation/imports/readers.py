"""Read records from dataset files, each with the line (or row) it came from.

Readers stream: a JSONL or CSV file of any size is read a record at a time. Errors
carry the file and line, so a user can open the file at the right place.
"""

import codecs
import csv
import gzip
import io
import json
import shlex
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
# Dialogue cells can be long (a transcript); the csv module's 128 KiB cap is too low.
csv.field_size_limit(64 * 1024 * 1024)
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class RowError:
    """What is wrong with one record; `line` is 1-based (a row number for Parquet).

    `line` is None for a file-level error: the file as a whole cannot be read (not
    UTF-8, truncated, corrupt), so there is no row to skip or to point at.
    """

    file: str
    line: int | None
    field: str
    message: str

    @property
    def file_level(self) -> bool:
        return self.line is None

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

    def open_binary(self) -> BinaryIO:
        if self.compressed:
            # Opened by name so that closing the GzipFile closes the file too.
            return gzip.GzipFile(self.path, "rb")  # type: ignore[return-value]
        return self.path.open("rb")

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
    except (UnicodeDecodeError, OSError, EOFError):
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
    try:
        yield from readers[source.container](source)
    # zlib.error: a gzip file whose deflate stream is corrupt (not an OSError).
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield RowError(source.display_name, None, "", f"cannot read the file: {exc}")


def _read_jsonl(source: Source) -> Iterator[Record | RowError]:
    with source.open_binary() as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except UnicodeDecodeError:
                # The encoding is the file's, not the line's: skipping such lines
                # would quietly drop every row with an accent.
                yield not_utf8(source)
                return
            except json.JSONDecodeError as exc:
                yield RowError(
                    source.display_name, number, "", f"invalid JSON: {exc.msg}"
                )
                continue
            if not isinstance(data, dict):
                yield RowError(
                    source.display_name, number, "", "expected a JSON object"
                )
                continue
            yield Record(number, data)


def _read_json_array(source: Source) -> Iterator[Record | RowError]:
    """A JSON array of objects; each record's line is where its object starts."""
    try:
        with source.open_text() as fh:
            text = fh.read()
    except UnicodeDecodeError:
        yield not_utf8(source)
        return
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    pos = skip_ws(pos)
    if pos >= n or text[pos] != "[":
        if pos < n and text[pos] == "{":
            # A single object, or JSON lines saved as .json: read it as JSONL.
            source.container = "jsonl"
            yield from _read_jsonl(source)
            return
        yield RowError(source.display_name, line_at(pos), "", "expected a JSON array")
        return
    pos = skip_ws(pos + 1)
    if pos < n and text[pos] == "]":
        return
    while True:
        start_line = line_at(pos)
        try:
            data, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield RowError(
                source.display_name, line_at(exc.pos), "", f"invalid JSON: {exc.msg}"
            )
            return
        if isinstance(data, dict):
            yield Record(start_line, data)
        else:
            yield RowError(
                source.display_name, start_line, "", "expected a JSON object"
            )
        pos = skip_ws(pos)
        if pos < n and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            return
        yield RowError(
            source.display_name, line_at(pos), "", "invalid JSON: expected ',' or ']'"
        )
        return


def _read_csv(source: Source) -> Iterator[Record | RowError]:
    name = source.display_name.lower().removesuffix(".gz")
    dialect: type[csv.Dialect] = csv.excel_tab if name.endswith(".tsv") else csv.excel
    try:
        with source.open_text() as fh:
            reader = csv.reader(fh, dialect=dialect)
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
                yield Record(line, dict(zip(header, row, strict=True)))
    except UnicodeDecodeError:
        yield not_utf8(source)


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
    with source.open_binary() as fh:
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with source.open_binary() as fh:
            table_file = pq.ParquetFile(fh)
            number = 0
            for batch in table_file.iter_batches(batch_size=4096):
                for data in batch.to_pylist():
                    number += 1
                    yield Record(number, data)
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
    if source.container == "parquet":
        import pyarrow.parquet as pq

        try:
            with source.open_binary() as fh:
                return int(pq.ParquetFile(fh).metadata.num_rows)
        except Exception:
            return None
    if source.container == "jsonl":
        try:
            with source.open_binary() as fh:
                return sum(1 for raw in fh if raw.strip())
        except (OSError, EOFError, zlib.error):
            return None
    return None
