"""Imports refuse what would hurt the server: too many bytes unpacked, a line (or
record) too long, a text field too long, JSON nested too deep, a .gz that is not.

Each refusal names the file, line and field, and nothing is written. The limits are
settings; the tests set them small so that the files stay small.
"""

import dataclasses
import gzip
import io
import json
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from annotation.imports.jobs import run_import_job
from annotation.imports.limits import Limits, nests_deeper
from annotation.imports.readers import (
    Record,
    RowError,
    count_records,
    read_records,
    sniff,
)
from annotation.imports.services import ImportFailed, import_dialogues
from annotation.models import Batch, Dialogue, ImportJob, JobStatus, Label
from tests.factories import BatchFactory

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


def _state() -> tuple[int, int, int, int]:
    """What an import may write: batches, dialogues, labels, users."""
    return (
        Batch.objects.count(),
        Dialogue.objects.count(),
        Label.objects.count(),
        User.objects.count(),
    )


def _jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _errors(result) -> list[str]:
    return [str(e) for e in result.errors]


def _import(path: Path, **kwargs):
    return import_dialogues(path=path, batch_name="limits", create_batch=True, **kwargs)


# --- bytes per line or record ------------------------------------------------------


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=100)
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_a_jsonl_line_past_the_line_limit_stops_the_import(tmp_path, skip_invalid):
    # given a JSONL file whose second line is 150 bytes, the limit being 100
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        _jsonl([{"prompt": "short"}, {"prompt": "x" * 136}, {"prompt": "fine"}])
    )
    before = _state()

    # when it is imported (even keeping the good rows)
    result = _import(path, skip_invalid=skip_invalid)

    # then the line is refused, naming the file, line and limit; nothing is written
    assert _errors(result) == [
        "rows.jsonl, line 2: the line is longer than 100 bytes "
        "(AEGIS_MAX_IMPORT_LINE_BYTES)"
    ]
    assert result.errors[0].fatal
    assert not result.written
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=100)
def test_a_line_of_exactly_the_limit_is_read(tmp_path):
    # given a line of exactly 100 bytes before its newline
    line = json.dumps({"prompt": "y" * 86}).encode()
    assert len(line) == 100
    path = tmp_path / "rows.jsonl"
    path.write_bytes(line + b"\n")

    # when it is imported, then it is imported
    assert _import(path).imported == 1


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=100)
def test_a_csv_row_past_the_line_limit_is_refused(tmp_path):
    # given a CSV whose second row spans two lines (a quoted newline) of 120 bytes
    path = tmp_path / "rows.csv"
    path.write_text('id,prompt\n1,short\n2,"' + "a" * 60 + "\n" + "b" * 60 + '"\n')
    before = _state()

    # when it is imported
    result = _import(path)

    # then the row is refused at the line it starts on
    assert _errors(result) == [
        "rows.csv, line 3: the row is longer than 100 bytes "
        "(AEGIS_MAX_IMPORT_LINE_BYTES)"
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=100)
def test_a_json_array_record_past_the_line_limit_is_refused(tmp_path):
    # given a JSON array whose second object (on line 3) is over 100 bytes
    path = tmp_path / "rows.json"
    path.write_text('[\n{"prompt": "short"},\n{"prompt": "' + "z" * 120 + '"}\n]\n')
    before = _state()

    # when it is imported
    result = _import(path)

    # then that record is refused by its line
    assert _errors(result) == [
        "rows.json, line 3: the record is longer than 100 bytes "
        "(AEGIS_MAX_IMPORT_LINE_BYTES)"
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=1000)
def test_a_json_array_is_read_an_element_at_a_time_across_chunks(tmp_path, monkeypatch):
    # given a JSON array of 300 objects read in chunks of 64 bytes, so that every
    # object and some strings are cut by a chunk's end
    from annotation.imports import readers

    monkeypatch.setattr(readers._ArrayReader, "CHUNK", 64)
    rows = [{"id": str(i), "prompt": f'prompt {i} é " [ {{'} for i in range(300)]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))

    # when it is read
    items = list(read_records(sniff(path)))

    # then every object comes whole, with the line it starts on
    assert all(isinstance(i, Record) for i in items)
    assert [i.data for i in items] == rows
    assert [i.line for i in items][:3] == [2, 6, 10]


# --- decompressed bytes per file ---------------------------------------------------


@override_settings(AEGIS_MAX_IMPORT_BYTES=64 * 1024)
def test_a_gzip_bomb_stops_at_the_byte_limit(tmp_path):
    # given a small gzip that unpacks to 20 MB of valid lines, the limit being 64 KiB
    path = tmp_path / "rows.jsonl.gz"
    line = b'{"prompt": "again"}\n'
    path.write_bytes(gzip.compress(line * (20 * MiB // len(line)), compresslevel=9))
    assert path.stat().st_size < 200 * 1024
    before = _state()

    # when it is read, then reading stops once the limit is passed, near its line
    items = list(read_records(sniff(path)))
    last = items[-1]
    assert isinstance(last, RowError)
    assert last.fatal
    assert len(items) - 1 <= 64 * 1024 // len(line)
    assert last.line is not None
    assert last.line <= 64 * 1024 // len(line) + 1

    # and an import of it is refused with that error, writing nothing
    result = _import(path)
    assert _errors(result) == [
        f"rows.jsonl.gz, line {last.line}: the file unpacks to more than 64 KiB "
        "(AEGIS_MAX_IMPORT_BYTES); split it into smaller files"
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_BYTES=1000)
def test_the_byte_limit_holds_for_csv_and_json_too(tmp_path):
    # given a CSV and a JSON array of 5,000 rows, the limit being 1,000 bytes
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("prompt\n" + "a row\n" * 5000)
    json_path = tmp_path / "rows.json"
    json_path.write_text(json.dumps([{"prompt": "a row"}] * 5000))

    # when each is imported, then each is refused on the byte limit
    for path, fmt in ((csv_path, "csv"), (json_path, "json")):
        result = _import(path, fmt=fmt)
        assert [e.message for e in result.errors] == [
            "the file unpacks to more than 1,000 bytes (AEGIS_MAX_IMPORT_BYTES); "
            "split it into smaller files"
        ]
    assert Dialogue.objects.count() == 0


@override_settings(AEGIS_MAX_IMPORT_BYTES=1000)
def test_a_parquet_file_past_the_byte_limit_is_refused(tmp_path):
    # given a Parquet file whose rows unpack to more than 1,000 bytes
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"prompt": [f"row {i} " * 20 for i in range(200)]}), path)

    # when it is imported, then it is refused as a whole
    result = _import(path, fmt="parquet")
    assert _errors(result) == [
        "rows.parquet: the file unpacks to more than 1,000 bytes "
        "(AEGIS_MAX_IMPORT_BYTES); split it into smaller files"
    ]
    assert Dialogue.objects.count() == 0


# --- characters per text field -----------------------------------------------------


@override_settings(AEGIS_MAX_IMPORT_FIELD_CHARS=50)
@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        (
            "rows.jsonl",
            _jsonl([{"prompt": "ok"}, {"prompt": "p" * 60}]),
            "line 2, field 'prompt'",
        ),
        (
            "rows.jsonl",
            _jsonl(
                [
                    {
                        "turns": [
                            {"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "r" * 60},
                        ]
                    }
                ]
            ),
            "line 1, field 'turns[2].content'",
        ),
        (
            "rows.csv",
            ("id,prompt\n1,ok\n2," + "c" * 60 + "\n").encode(),
            "line 3, field 'prompt'",
        ),
        (
            "rows.json",
            json.dumps([{"prompt": "ok"}, {"prompt": "j" * 60}], indent=0).encode(),
            "line 5, field 'prompt'",
        ),
    ],
)
def test_a_text_field_past_the_field_limit_is_refused(tmp_path, name, content, where):
    # given a file with one text of 60 characters, the limit being 50
    path = tmp_path / name
    path.write_bytes(content)
    before = _state()

    # when it is imported (as its container: a first row that cannot be read stops
    # the detection of its format, with the same message)
    result = _import(path, fmt=name.split(".")[1])

    # then that field is named with its line, and nothing is written
    assert _errors(result) == [
        f"{name}, {where}: is 60 characters long, more than 50 "
        "(AEGIS_MAX_IMPORT_FIELD_CHARS)"
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_FIELD_CHARS=50)
def test_a_parquet_text_past_the_field_limit_is_refused(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"prompt": ["ok", "q" * 60]}), path)

    result = _import(path)

    assert _errors(result) == [
        "rows.parquet, row 2, field 'prompt': is 60 characters long, more than 50 "
        "(AEGIS_MAX_IMPORT_FIELD_CHARS)"
    ]
    assert Dialogue.objects.count() == 0


@override_settings(AEGIS_MAX_IMPORT_FIELD_CHARS=50)
def test_skip_invalid_skips_a_row_with_a_long_field_and_keeps_the_rest(tmp_path):
    # given one row with a long prompt between two good ones
    path = tmp_path / "rows.jsonl"
    path.write_bytes(_jsonl([{"prompt": "a"}, {"prompt": "p" * 60}, {"prompt": "b"}]))

    # when imported keeping the good rows, then the others are written
    result = _import(path, skip_invalid=True)
    assert result.imported == 2
    assert [e.line for e in result.errors] == [2]


# --- JSON nesting ------------------------------------------------------------------


def test_json_nested_100000_deep_is_refused_without_recursion(tmp_path):
    # given a JSON array nested 100,000 deep (a RecursionError in json.loads)
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    before = _state()

    # when it is imported as JSON
    result = _import(path, fmt="json")

    # then it is refused at line 1 on the depth limit, and nothing is written
    assert _errors(result) == [
        "deep.json, line 1: JSON nested deeper than 64 levels "
        "(AEGIS_MAX_IMPORT_JSON_DEPTH)"
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_JSON_DEPTH=3)
def test_the_depth_limit_counts_brackets_outside_strings_only(tmp_path):
    # given lines nested 3 and 4 deep, and one with brackets inside a string
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        _jsonl(
            [
                {"prompt": "three", "m": {"a": [1]}},
                {"prompt": '[[[[[[{{{{ \\" ]]]'},
                {"prompt": "four", "m": {"a": [{"b": 1}]}},
            ]
        )
    )

    # when it is imported, then only the fourth level is refused, on its line
    result = _import(path)
    assert _errors(result) == [
        "rows.jsonl, line 3: JSON nested deeper than 3 levels "
        "(AEGIS_MAX_IMPORT_JSON_DEPTH)"
    ]
    assert Dialogue.objects.count() == 0


@override_settings(AEGIS_MAX_IMPORT_JSON_DEPTH=3)
def test_a_deep_turns_cell_in_a_csv_is_refused_by_its_field(tmp_path):
    # given a CSV whose turns cell holds JSON text nested 4 deep
    path = tmp_path / "rows.csv"
    path.write_text('id,turns\n1,"[[[[""x""]]]]"\n')

    # when it is imported, then the cell is refused by its field
    result = _import(path, fmt="csv")
    assert _errors(result) == [
        "rows.csv, line 2, field 'turns': is JSON nested deeper than 3 levels "
        "(AEGIS_MAX_IMPORT_JSON_DEPTH)"
    ]


def test_nests_deeper_walks_without_recursion():
    assert nests_deeper("[" * 500_000, 64) == 64
    assert nests_deeper('["' + "[" * 100 + '"]', 64) is None
    assert nests_deeper(b'{"a": [[]]}', 3) is None
    assert nests_deeper(b'{"a": [[[]]]}', 3) == 8


# --- a .gz that is not gzip --------------------------------------------------------


def test_a_gz_name_on_a_plain_file_is_refused(tmp_path):
    # given plain JSON lines saved under a .gz name
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(_jsonl([{"prompt": "a"}]))
    message = (
        "rows.jsonl.gz: the name ends in .gz but the file is not gzip-compressed "
        "(it does not start with the gzip signature 1f 8b): compress it with gzip, "
        "or upload it without the .gz"
    )

    # when it is imported, with or without a format, then it is refused as a file
    with pytest.raises(ImportFailed) as failed:
        _import(path)
    assert str(failed.value) == message
    assert _errors(_import(path, fmt="jsonl")) == [message]
    assert count_records(sniff(path)) is None
    assert Dialogue.objects.count() == 0


# --- memory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("endless.jsonl.gz", b""),
        ("endless.json.gz", b'["'),
        ("endless.csv.gz", b'prompt\n"'),
    ],
)
def test_memory_stays_bounded_by_the_line_limit_not_the_file(tmp_path, name, head):
    # given a gzip that unpacks to 50 MB without a newline, the line limit 1 MiB
    path = tmp_path / name
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(head)
        for _ in range(50):
            out.write(b"a" * 1_000_000)
    source = dataclasses.replace(sniff(path), limits=Limits(line_bytes=MiB))

    # when it is read, tracing the memory allocated
    tracemalloc.start()
    try:
        items = list(read_records(source))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then it is refused on the line limit, and the peak is a few MB, not 50
    assert len(items) == 1
    assert isinstance(items[0], RowError)
    assert items[0].fatal
    assert "AEGIS_MAX_IMPORT_LINE_BYTES" in items[0].message
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB"


# --- where people read it: the command, the upload page, the API --------------------


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=1000)
def test_the_command_refuses_a_bomb_cleanly_with_a_json_error(tmp_path):
    # given a gzip of 5 MB of zero bytes (one endless line)
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b"\0" * (5 * MiB)))
    out = io.StringIO()
    before = _state()

    # when the command imports it with --json
    with pytest.raises(CommandError) as failed:
        call_command(
            "import_dialogues",
            str(path),
            "--batch",
            "bomb",
            "--create-batch",
            "--json",
            stdout=out,
        )

    # then it fails with the limit's message, and --json prints it as an object
    text = (
        "bomb.jsonl.gz, line 1: the line is longer than 1,000 bytes "
        "(AEGIS_MAX_IMPORT_LINE_BYTES)"
    )
    assert str(failed.value) == text
    body = json.loads(out.getvalue())
    assert body["detail"] == text
    assert [(e["file"], e["line"], e["field"]) for e in body["errors"]] == [
        ("bomb.jsonl.gz", 1, "")
    ]
    assert _state() == before


@override_settings(AEGIS_MAX_IMPORT_FIELD_CHARS=50)
def test_the_upload_page_and_the_api_say_which_limit(lead_client, lead):
    # given a lead who uploads a file with one long prompt
    BatchFactory(name="target")
    content = _jsonl([{"prompt": "ok"}, {"prompt": "p" * 60}])
    response = lead_client.post(
        "/imports/new/",
        {
            "kind": "dialogues",
            "transcript": "chosen",
            "batch": "target",
            "file": SimpleUploadedFile("rows.jsonl", content),
        },
    )
    assert response.status_code == 302, response.content.decode()

    # when the worker runs the job
    job = run_import_job(job_id=ImportJob.objects.get().pk)

    # then it failed naming line, field and limit, on the page as in the job
    assert job.status == JobStatus.FAILED
    assert [(e["line"], e["field"]) for e in job.errors] == [(2, "prompt")]
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()
    assert "AEGIS_MAX_IMPORT_FIELD_CHARS" in page
    assert "is 60 characters long, more than 50" in page
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    body = api.get(f"/api/v1/imports/{job.pk}").json()
    assert [(e["line"], e["field"], e["message"]) for e in body["errors"]] == [
        (
            2,
            "prompt",
            "is 60 characters long, more than 50 (AEGIS_MAX_IMPORT_FIELD_CHARS)",
        )
    ]
    assert Dialogue.objects.count() == 0


@override_settings(AEGIS_MAX_IMPORT_LINE_BYTES=1000)
def test_an_uploaded_bomb_fails_its_job_with_the_limit(lead_client):
    # given a lead who uploads a gzip of one endless line
    BatchFactory(name="target")
    content = gzip.compress(b"\0" * (2 * MiB))
    lead_client.post(
        "/imports/new/",
        {
            "kind": "dialogues",
            "transcript": "chosen",
            "batch": "target",
            "file": SimpleUploadedFile("bomb.jsonl.gz", content),
        },
    )

    # when the worker runs the job, then it failed saying which limit
    job = run_import_job(job_id=ImportJob.objects.get().pk)
    assert job.status == JobStatus.FAILED
    assert "AEGIS_MAX_IMPORT_LINE_BYTES" in job.error_text
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()
    assert "the line is longer than 1,000 bytes" in page
    assert Dialogue.objects.count() == 0


def test_a_file_of_one_line_repeated_costs_one_row(tmp_path):
    # given a gzip of 50,000 copies of one line (the shape of a bomb with newlines)
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "again and again"}\n' * 50_000))
    tracemalloc.start()

    # when it is imported
    try:
        result = _import(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then one dialogue is written, the rest counted as duplicates while reading,
    # so the rows held stay one (50,000 held rows would take tens of MB)
    assert (result.imported, result.skipped_duplicates) == (1, 49_999)
    assert Dialogue.objects.count() == 1
    assert peak < 10 * MiB, f"peak {peak / MiB:.1f} MiB"
