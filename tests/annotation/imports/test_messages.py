"""What an import says when it fails, where the person reading it is.

The same import code serves the command line and the upload form (page and API); a
message names the option to change as that surface shows it. A file that cannot be
read at all is a file-level error (no line), and a file in another encoding than
UTF-8 says how to convert it.
"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from annotation.imports.jobs import run_import_job
from annotation.imports.services import ImportFailed, import_dialogues
from annotation.models import Batch, Dialogue, ImportJob, JobStatus, Label
from tests.factories import BatchFactory, DialogueFactory, LeadFactory

pytestmark = pytest.mark.django_db

# "café" in Latin-1: é is the single byte 0xE9, which UTF-8 never starts a
# character with when it is followed by a newline.
LATIN1_CSV = "id,prompt\n1,tea\n2,café\n".encode("latin-1")
ADVICE = (
    "save it as UTF-8 (in Excel: Save As “CSV UTF-8”) or convert it, e.g. "
    "`iconv -f latin1 -t utf-8 {name} > {out}`"
)


def _upload(client, name: str, content: bytes, **fields: str) -> ImportJob:
    """Post the upload form as a lead does, then run the queued job here (the
    worker's part; the test's transaction never commits, so no task is sent)."""
    data = {"kind": "dialogues", "transcript": "chosen"} | fields
    response = client.post(
        "/imports/new/", data | {"file": SimpleUploadedFile(name, content)}
    )
    assert response.status_code == 302, response.content.decode()
    return run_import_job(job_id=ImportJob.objects.get().pk)


# --- the form's words on the page and the API -------------------------------------


def test_a_file_whose_format_cannot_be_told_asks_for_the_form_field(lead_client):
    # given a CSV whose columns name no known format
    BatchFactory(name="target")
    content = b"title,body\nt,b\n"

    # when a lead uploads it without choosing a format
    job = _upload(lead_client, "rows.csv", content, batch="target")

    # then the job fails with one file-level error in the form's words
    message = (
        "rows.csv: cannot tell the format from its columns (title, body); "
        "choose the format in the form (field “format”)"
    )
    assert job.status == JobStatus.FAILED
    assert job.errors == [
        {"file": "rows.csv", "line": None, "field": "", "message": message}
        | {"text": message}
    ]
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()
    assert "choose the format in the form (field “format”)" in page
    assert "--format" not in page
    assert Dialogue.objects.count() == 0


def test_the_api_upload_speaks_of_the_form_field_too(tmp_path):
    # given a lead with an API token and a file of unknown columns
    lead = LeadFactory(username="lena")
    BatchFactory(name="target")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")

    # when the file is posted to the API and the worker runs it
    posted = api.post(
        "/api/v1/imports",
        {"file": SimpleUploadedFile("rows.csv", b"title\nt\n"), "batch": "target"},
        format="multipart",
    )
    run_import_job(job_id=posted.json()["id"])

    # then the error names the field the API takes, not a command-line flag
    body = api.get(f"/api/v1/imports/{posted.json()['id']}").json()
    assert body["status"] == "failed"
    assert [e["message"] for e in body["errors"]] == [
        "rows.csv: cannot tell the format from its columns (title); "
        "choose the format in the form (field “format”)"
    ]
    assert body["errors"][0]["line"] is None


def test_a_label_upload_with_an_unknown_annotator_names_the_form_checkbox(
    lead_client,
):
    # given a batch with one dialogue, and a label file by someone with no account
    batch = BatchFactory(name="votes")
    DialogueFactory(batch=batch, external_id="d1")
    content = b"dialogue_id,annotator,label\nd1,zoe,safe\n"

    # when a lead uploads it without ticking "create unknown annotators"
    job = _upload(lead_client, "labels.csv", content, batch="votes", kind="labels")

    # then the row's error says which box to tick, and no vote or user was made
    assert job.status == JobStatus.FAILED
    assert [(e["line"], e["field"], e["message"]) for e in job.errors] == [
        (
            2,
            "annotator",
            "no user 'zoe'; tick “Create unknown annotators” "
            "(field “create_annotators”) to create them",
        )
    ]
    assert Label.objects.count() == 0
    assert not User.objects.filter(username="zoe").exists()


def test_the_command_line_keeps_its_flags(tmp_path):
    # given a file of unknown columns
    path = tmp_path / "rows.csv"
    path.write_bytes(b"title\nt\n")
    BatchFactory(name="target")

    # when the service is called as the command calls it (its default surface)
    with pytest.raises(ImportFailed) as failed:
        import_dialogues(path=path, batch_name="target")

    # then it asks for the flag
    assert str(failed.value).endswith("; pass --format")


# --- files that are not UTF-8 -----------------------------------------------------


def test_a_latin1_csv_upload_fails_with_advice_about_encodings(lead_client):
    # given a CSV saved as Latin-1 (Excel's plain "CSV" on Windows)
    BatchFactory(name="target")

    # when a lead uploads it
    job = _upload(lead_client, "rows.csv", LATIN1_CSV, batch="target")

    # then it fails as a whole: the byte, where it is, and how to convert the file
    message = "rows.csv: not UTF-8 text (byte 0xE9 at offset 21, line 3): " + (
        ADVICE.format(name="rows.csv", out="rows-utf8.csv")
    )
    assert job.status == JobStatus.FAILED
    assert [(e["line"], e["text"]) for e in job.errors] == [(None, message)]
    assert Dialogue.objects.count() == 0


def test_a_latin1_csv_is_refused_even_when_invalid_rows_are_skipped(tmp_path):
    # given a Latin-1 CSV whose first 2,000 rows are plain ASCII (so they read as
    # UTF-8 and the format is detected) and whose last row has an accent
    path = tmp_path / "rows.csv"
    ascii_rows = "".join(f"{i},prompt {i}\n" for i in range(2000))
    path.write_bytes(f"id,prompt\n{ascii_rows}2000,café\n".encode("latin-1"))

    # when it is imported with skip_invalid
    result = import_dialogues(
        path=path, batch_name="b1", create_batch=True, skip_invalid=True
    )

    # then nothing is written: skipping rows would drop every accented one
    assert (result.written, result.imported, result.error_count) == (False, 0, 1)
    assert result.errors[0].line is None
    assert str(result.errors[0]).startswith(
        "rows.csv: not UTF-8 text (byte 0xE9 at offset 31798, line 2002): "
    )
    assert Batch.objects.count() == 0
    assert Dialogue.objects.count() == 0


def test_a_latin1_line_in_jsonl_fails_the_whole_file(tmp_path):
    # given JSON lines whose second line was written as Windows-1252 (curly quotes)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        b'{"prompt": "a"}\n' + '{"prompt": "“b”"}\n'.encode("cp1252") + b'{"x": 1}\n'
    )

    # when it is imported, skipping invalid rows
    result = import_dialogues(
        path=path, batch_name="b1", create_batch=True, skip_invalid=True
    )

    # then the file is refused, the advice names the Windows encoding
    assert [str(e) for e in result.errors] == [
        "rows.jsonl: not UTF-8 text (byte 0x93 at offset 28, line 2): "
        "save it as UTF-8 (in Excel: Save As “CSV UTF-8”) or convert it, e.g. "
        "`iconv -f cp1252 -t utf-8 rows.jsonl > rows-utf8.jsonl`"
    ]
    assert (result.written, Dialogue.objects.count()) == (False, 0)


def test_the_bad_byte_is_found_exactly_past_the_first_megabyte(tmp_path):
    # given a CSV whose first row is 1 MiB long with a UTF-8 "é" split across the
    # first MiB boundary (valid), then a Latin-1 "é" on line 3
    start = b"id,prompt\n1,"
    first = start + b"x" * ((1 << 20) - 1 - len(start)) + "é".encode() + b"\n"
    content = first + b"2,caf\xe9\n"
    path = tmp_path / "rows.csv"
    path.write_bytes(content)

    # when it is imported
    result = import_dialogues(path=path, batch_name="b1", create_batch=True, fmt="csv")

    # then the byte, its offset and its line are the Latin-1 one's
    offset = content.index(b"\xe9\n")
    assert str(result.errors[0]).startswith(
        f"rows.csv: not UTF-8 text (byte 0xE9 at offset {offset}, line 3): "
    )


def test_a_utf16_file_is_told_apart(tmp_path):
    # given a CSV saved as "Unicode text" (UTF-16 with a byte-order mark)
    path = tmp_path / "rows.csv"
    path.write_bytes("id,prompt\n1,tea\n".encode("utf-16"))

    # when it is imported with its format named
    result = import_dialogues(path=path, batch_name="b1", create_batch=True, fmt="csv")

    # then the advice converts from UTF-16
    assert [str(e) for e in result.errors] == [
        "rows.csv: not UTF-8 text (byte 0xFF at offset 0, line 1): "
        "save it as UTF-8 (in Excel: Save As “CSV UTF-8”) or convert it, e.g. "
        "`iconv -f utf-16 -t utf-8 rows.csv > rows-utf8.csv`"
    ]


# --- the failed page ----------------------------------------------------------------


def test_a_file_level_failure_shows_a_failed_state_without_a_bar_or_table(
    lead_client,
):
    # given a failed import whose file could not be read (no line to point at)
    BatchFactory(name="target")
    job = _upload(lead_client, "rows.csv", LATIN1_CSV, batch="target")

    # when the lead opens its page
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()

    # then it says it failed and why, with no progress bar and no errors table
    assert 'data-status="failed"' in page
    assert 'role="progressbar"' not in page
    assert "<table" not in page
    assert '<div class="import-failed" role="alert">' in page
    assert "The file could not be imported; nothing was written." in page
    assert "not UTF-8 text (byte 0xE9 at offset 21, line 3)" in page


def test_a_failure_with_row_errors_lists_them_with_their_lines(lead_client):
    # given an upload whose third line has no prompt
    BatchFactory(name="target")
    rows = [{"id": "a", "prompt": "hello"}, {"id": "b", "prompt": "hi"}, {"id": "c"}]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    job = _upload(lead_client, "bad.jsonl", content, batch="target")

    # when the lead opens its page
    response = lead_client.get(f"/imports/{job.pk}/")
    page = response.content.decode()

    # then the failed state has no bar, and every error row has its line filled
    assert 'role="progressbar"' not in page
    assert "1 row has an error; nothing was written." in page
    assert [(e.line, e.field) for e in response.context["row_errors"]] == [
        (3, "prompt")
    ]
    assert response.context["file_errors"] == []
    assert '<td class="num">3</td>' in page
    assert "—</td>" not in page


def test_a_running_import_shows_its_bar(lead_client):
    # given an import a worker is reading
    job = ImportJob.objects.create(
        batch_name="x",
        file_path="/nonexistent",
        original_name="x.jsonl",
        status=JobStatus.RUNNING,
        phase="reading",
        rows_total=10,
        rows_read=4,
    )

    # when the lead opens its page
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()

    # then the bar shows how far it is, and nothing speaks of failure
    assert 'role="progressbar"' in page
    assert 'aria-valuenow="40"' in page
    assert "import-failed" not in page


def test_an_error_stored_before_this_change_still_shows_as_file_level(lead_client):
    # given a failed job stored by an older version: its error has only a text
    job = ImportJob.objects.create(
        batch_name="x",
        file_path="/nonexistent",
        original_name="x.jsonl",
        status=JobStatus.FAILED,
        errors=[{"text": "x.jsonl: cannot read the file"}],
        error_count=1,
    )

    # when the lead opens its page
    response = lead_client.get(f"/imports/{job.pk}/")

    # then the text is the file-level message, not a table row with an empty line
    assert [e.message for e in response.context["file_errors"]] == [
        "x.jsonl: cannot read the file"
    ]
    assert response.context["row_errors"] == []
    assert "<table" not in response.content.decode()


def test_a_message_quoting_the_file_is_escaped_and_its_command_is_code(lead_client):
    # given a failed import of a Latin-1 file whose header is markup
    BatchFactory(name="target")
    job = _upload(
        lead_client, "rows.csv", "<b>x</b>\ncafé\n".encode("latin-1"), batch="target"
    )

    # when the lead opens its page
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()

    # then the suggested command is code, and nothing of the file is markup
    assert "<code>iconv -f latin1 -t utf-8 rows.csv &gt; rows-utf8.csv</code>" in page
    assert "`" not in page.split('class="import-failed-reason">')[1].split("</p>")[0]


def test_column_names_in_a_message_are_shown_as_text(lead_client):
    # given a CSV whose column names are markup
    BatchFactory(name="target")
    job = _upload(lead_client, "rows.csv", b"<b>x</b>\nt\n", batch="target")

    # when the lead opens its page
    page = lead_client.get(f"/imports/{job.pk}/").content.decode()

    # then the names are escaped text
    assert "columns (&lt;b&gt;x&lt;/b&gt;)" in page
    assert "<b>x</b>" not in page
