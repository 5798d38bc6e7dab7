"""The exports pages: who may see and start exports, the form's checks, progress
polling, and a finished snapshot's counts, files, card and zip."""

import io
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from annotation.export.forms import ExportForm, topic_upload_dir
from annotation.export.services import (
    ExportParams,
    ExportProblem,
    run_snapshot,
    start_export,
)
from annotation.models import Batch, ExportSnapshot, JobStatus, LabelCategory
from taxonomy.models import Category
from tests.conftest import login
from tests.factories import BatchFactory, DialogueFactory, LabelFactory

pytestmark = pytest.mark.django_db

ZIP_FILES = [
    "README.md",
    "aegis/test.json",
    "aegis/train.json",
    "aegis/validation.json",
    "csv/test.csv",
    "csv/train.csv",
    "csv/validation.csv",
    "manifest.json",
    "parquet/test.parquet",
    "parquet/train.parquet",
    "parquet/validation.parquet",
    "sft/test.jsonl",
    "sft/train.jsonl",
    "sft/validation.jsonl",
]


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The snapshot ids sent to the worker (the test runs them itself)."""
    from annotation import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.run_export, "delay", sent.append)
    return sent


@pytest.fixture
def root_client(client: Client, admin_user: User) -> Client:
    return login(client, admin_user)


def labelled_batch(name: str, *, safe: int = 4, unsafe: int = 2) -> Batch:
    """`safe` dialogues with a response and three safe votes, `unsafe` prompts
    without a response and three unsafe votes (Violence), and one unsafe dialogue
    with a response but no jury decision: its final label stays unresolved."""
    batch = BatchFactory(name=name)
    violence = Category.objects.get(taxonomy=batch.taxonomy, name="Violence")
    for _ in range(safe):
        dialogue = DialogueFactory(batch=batch)
        for _ in range(3):
            LabelFactory(dialogue=dialogue, label="safe")
    for _ in range(unsafe):
        dialogue = DialogueFactory(batch=batch, response=None)
        for _ in range(3):
            vote = LabelFactory(dialogue=dialogue, label="unsafe")
            LabelCategory.objects.create(label=vote, category=violence, position=0)
    unresolved = DialogueFactory(batch=batch)
    for _ in range(3):
        vote = LabelFactory(dialogue=unresolved, label="unsafe")
        LabelCategory.objects.create(label=vote, category=violence, position=0)
    return batch


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "batches": ["demo"],
        "ratios_0": "0.8",
        "ratios_1": "0.1",
        "ratios_2": "0.1",
        "seed": "0",
        "needs_caution_policy": "",
        "include_refusals": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


class _Tables(HTMLParser):
    """The text of every cell of the table with the given id, row by row."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table_id) in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str) -> list[list[str]]:
    parser = _Tables(table_id)
    parser.feed(html)
    return parser.rows


# --- who may do what ------------------------------------------------------------------


def test_annotators_get_403_on_every_export_page(annotator_client: Client):
    # given a finished-or-not snapshot
    snapshot = ExportSnapshot.objects.create(
        batch_names=["demo"], ratios=[0.8, 0.1, 0.1]
    )

    # when an annotator opens the pages, then each one is refused
    for url in (
        "/exports/",
        "/exports/new/",
        f"/exports/{snapshot.pk}/",
        f"/exports/{snapshot.pk}/download/",
    ):
        assert annotator_client.get(url).status_code == 403, url
    assert annotator_client.post("/exports/new/", form_data()).status_code == 403
    assert ExportSnapshot.objects.count() == 1


def test_leads_see_the_list_but_cannot_start_an_export(
    lead_client: Client, queued: list[int]
):
    # given a batch
    labelled_batch("demo")

    # when a lead opens the list, the form, and posts the form
    listing = lead_client.get("/exports/")
    new = lead_client.get("/exports/new/")
    posted = lead_client.post("/exports/new/", form_data())

    # then they see the list without a New export button, and may not start one
    assert listing.status_code == 200
    assert 'aria-current="page">Exports</a>' in listing.content.decode()
    assert "/exports/new/" not in listing.content.decode()
    assert (new.status_code, posted.status_code) == (403, 403)
    assert not ExportSnapshot.objects.exists()
    assert queued == []


# --- starting an export ---------------------------------------------------------------


def test_the_form_lists_batches_with_their_dialogue_counts(root_client: Client):
    # given two batches
    labelled_batch("demo")
    BatchFactory(name="empty")

    # when the admin opens the form
    page = root_client.get("/exports/new/").content.decode()

    # then every batch is a checkbox with its count, and the defaults are set
    assert 'value="demo"' in page
    assert "demo (7 dialogues)" in page
    assert 'value="empty"' in page
    assert "empty (0 dialogues)" in page
    assert 'name="ratios_0" value="0.8"' in page
    assert 'name="ratios_1" value="0.1"' in page
    assert 'name="ratios_2" value="0.1"' in page
    assert 'name="seed" value="0"' in page
    assert 'id="id_include_refusals" checked>' in page
    assert "Refusals go to train and validation only, never to test." in page


def test_an_admin_starts_an_export_which_is_queued_after_the_commit(
    root_client: Client,
    admin_user: User,
    queued: list[int],
    django_capture_on_commit_callbacks: Any,
):
    # given a labelled batch
    labelled_batch("demo")

    # when the admin submits the form
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = root_client.post(
            "/exports/new/",
            form_data(
                seed="7",
                ratios_0="0.6",
                ratios_1="0.2",
                ratios_2="0.2",
                needs_caution_policy="defensive",
                include_refusals=None,
            ),
        )

    # then a snapshot is recorded with the parameters, and sent to the worker only
    # once the transaction commits
    snapshot = ExportSnapshot.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/exports/{snapshot.pk}/"
    assert (
        snapshot.batch_names,
        snapshot.seed,
        snapshot.ratios,
        snapshot.needs_caution_policy,
        snapshot.include_refusals,
        snapshot.topic_file,
        snapshot.status,
        snapshot.created_by,
    ) == (["demo"], 7, [0.6, 0.2, 0.2], "defensive", False, "", "pending", admin_user)
    assert queued == []
    for callback in callbacks:
        callback()
    assert queued == [snapshot.pk]


def test_an_htmx_submission_is_sent_to_the_snapshot_page(
    root_client: Client, queued: list[int]
):
    labelled_batch("demo")

    response = root_client.post("/exports/new/", form_data(), HTTP_HX_REQUEST="true")

    snapshot = ExportSnapshot.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/exports/{snapshot.pk}/"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"batches": None}, "batches", "Choose at least one batch."),
        (
            {"batches": ["nope"]},
            "batches",
            "Select a valid choice. nope is not one of the available choices.",
        ),
        (
            {"ratios_1": "0.2"},
            "ratios",
            "Ratios must add up to 1, not 1.1: [0.8, 0.2, 0.1]",
        ),
        ({"ratios_2": ""}, "ratios", "This field is required."),
        (
            {"ratios_0": "0", "ratios_1": "0.5", "ratios_2": "0.5"},
            "ratios",
            "The train share must be above 0",
        ),
        ({"seed": "-1"}, "seed", "Ensure this value is greater than or equal to 0."),
        (
            {"needs_caution_policy": "lenient"},
            "needs_caution_policy",
            "Select a valid choice. lenient is not one of the available choices.",
        ),
        (
            {"topic_file": SimpleUploadedFile("topics.txt", b"[]")},
            "topic_file",
            "Upload a CantTalkAboutThis file: .json (an array) or .jsonl.",
        ),
    ],
)
def test_invalid_input_comes_back_on_its_field_and_writes_nothing(
    root_client: Client,
    queued: list[int],
    media: Path,
    overrides: dict[str, Any],
    field: str,
    message: str,
):
    # given a labelled batch
    labelled_batch("demo")

    # when the admin submits the form with one bad field (through htmx)
    response = root_client.post(
        "/exports/new/", form_data(**overrides), HTTP_HX_REQUEST="true"
    )

    # then the form fragment comes back with the field's error, and nothing is
    # recorded, queued or stored
    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    page = response.content.decode()
    assert page.lstrip().startswith('<form id="export-form"')
    assert "Please fix the fields marked below." in page
    assert not ExportSnapshot.objects.exists()
    assert queued == []
    assert not topic_upload_dir().exists()


def test_a_refusal_of_the_service_is_shown_on_the_field_it_names():
    # given a valid form
    labelled_batch("demo")
    form = ExportForm(form_data())
    assert form.is_valid()

    # when the service refuses a parameter, and then something of no parameter
    form.add_problem(ExportProblem("batches: no batch named 'demo'"))
    form.add_problem(ExportProblem("only admins can export training data"))

    # then the first lands on its field, the second above the form
    assert form.errors == {
        "batches": ["No batch named 'demo'"],
        "__all__": ["Only admins can export training data"],
    }


def test_a_topic_file_is_stored_and_blended_into_the_export(
    root_client: Client, queued: list[int], media: Path
):
    # given a labelled batch and a CantTalkAboutThis file of two scenarios
    labelled_batch("demo")
    records = b"".join(
        b'{"domain": "banking", "scenario": "%s", "system_instruction": "Only '
        b'banking.", "conversation": [{"role": "user", "content": "Hi"}, {"role": '
        b'"assistant", "content": "Hello"}], "distractors": []}\n' % name
        for name in (b"loans", b"cards")
    )

    # when the admin exports with it
    root_client.post(
        "/exports/new/",
        form_data(topic_file=SimpleUploadedFile("bank topics.jsonl", records)),
    )
    snapshot = run_snapshot(ExportSnapshot.objects.get().pk)

    # then the file was kept under the media folder, and its rows are counted
    stored = Path(snapshot.topic_file)
    assert stored.parent.parent == media / "uploads" / "topic-files"
    assert stored.read_bytes() == records
    assert snapshot.topic_name == "bank_topics.jsonl"
    assert snapshot.status == JobStatus.SUCCEEDED
    splits = snapshot.counts["splits"]
    assert sum(splits[s]["topic_following"] for s in splits) == 2
    page = root_client.get(f"/exports/{snapshot.pk}/").content.decode()
    assert '<span class="code">bank_topics.jsonl</span>' in page


def test_a_bad_topic_file_fails_the_snapshot_with_its_error(
    root_client: Client, queued: list[int], media: Path
):
    # given an export started with a topic file whose first line is not JSON
    labelled_batch("demo")
    root_client.post(
        "/exports/new/",
        form_data(topic_file=SimpleUploadedFile("topics.jsonl", b"not json\n")),
    )
    snapshot = ExportSnapshot.objects.get()

    # when the worker runs it
    snapshot = run_snapshot(snapshot.pk)

    # then the snapshot failed with the line's error, wrote no files, and the page
    # shows the error and offers no download
    assert snapshot.status == JobStatus.FAILED
    assert snapshot.error == ("topic_file: line 1 is not valid JSON: Expecting value")
    assert sorted(p.name for p in (media / "exports").iterdir()) == []
    page = root_client.get(f"/exports/{snapshot.pk}/").content.decode()
    assert 'data-status="failed"' in page
    assert "topic_file: line 1 is not valid JSON: Expecting value" in page
    assert "Download zip" not in page
    assert "hx-trigger" not in page
    download = root_client.get(f"/exports/{snapshot.pk}/download/")
    assert download.status_code == 404
    listing = root_client.get("/exports/").content.decode()
    assert "topic_file: line 1 is not valid JSON: Expecting value" in listing


# --- progress and results -------------------------------------------------------------


def test_unfinished_snapshots_poll_until_they_are_finished(lead_client: Client):
    # given a snapshot no worker has taken yet
    snapshot = ExportSnapshot.objects.create(
        batch_names=["demo"], ratios=[0.8, 0.1, 0.1], steps_total=6, steps_done=3
    )

    # when htmx asks for the list's table and the page's progress
    table_part = lead_client.get("/exports/", HTTP_HX_REQUEST="true")
    progress = lead_client.get(
        f"/exports/{snapshot.pk}/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="export-progress",
    )

    # then only the fragments come back, and both keep polling
    assert table_part.content.decode().lstrip().startswith('<div id="export-table"')
    assert 'hx-trigger="every 2s"' in table_part.content.decode()
    assert 'aria-valuenow="50"' in table_part.content.decode()
    assert progress.content.decode().lstrip().startswith('<div id="export-progress"')
    assert 'hx-trigger="every 1s"' in progress.content.decode()
    assert 'aria-valuenow="50"' in progress.content.decode()

    # and once it has failed, neither polls any more
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=JobStatus.FAILED, error="boom"
    )
    table_part = lead_client.get("/exports/", HTTP_HX_REQUEST="true")
    progress = lead_client.get(
        f"/exports/{snapshot.pk}/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="export-progress",
    )
    assert "hx-trigger" not in table_part.content.decode()
    assert "hx-trigger" not in progress.content.decode()


def test_a_finished_export_shows_counts_files_and_card_and_downloads(
    root_client: Client, queued: list[int], media: Path
):
    # given an export of a batch with 6 exportable dialogues and 1 unresolved one
    labelled_batch("demo")
    root_client.post("/exports/new/", form_data())
    snapshot = ExportSnapshot.objects.get()
    name = f"export-{snapshot.pk:05d}"

    # when the worker has run it
    snapshot = run_snapshot(snapshot.pk)

    # then the page shows the counts per split, their total and what was left out
    assert snapshot.status == JobStatus.SUCCEEDED
    page = root_client.get(f"/exports/{snapshot.pk}/").content.decode()
    splits = snapshot.counts["splits"]
    counts = table(page, "export-counts")
    assert counts[0][:3] == ["Split", "Rows", "Prompts"]
    expected = []
    for split in ("train", "validation", "test"):
        c = splits[split]
        prompt, response = c["prompt_label"], c["response_label"]
        expected.append(
            [split, str(c["rows"]), str(c["prompts"])]
            + [str(prompt.get(k, 0)) for k in ("safe", "unsafe")]
            + [str(response.get(k, 0)) for k in ("safe", "unsafe", "none")]
            + ["0", "0"]
        )
    assert counts[1:4] == expected
    assert counts[4] == ["all", "6", "6", "4", "2", "4", "0", "2", "0", "0"]
    assert "Left out: unresolved final label <b>1</b>." in page
    # and every file of the manifest with its size and hash
    manifest = (media / "exports" / name / "manifest.json").read_bytes()
    files = table(page, "export-files")
    assert [row[0] for row in files[1:]] == ZIP_FILES[:7] + ZIP_FILES[8:] + [
        "manifest.json"
    ]
    assert files[-1] == ["manifest.json", str(len(manifest)), snapshot.manifest_sha256]
    readme = media / "exports" / name / "README.md"
    assert files[1][1] == str(readme.stat().st_size)
    # and the dataset card, rendered
    assert "<h1>Aegis Studio export: demo</h1>" in page
    assert f'href="/exports/{snapshot.pk}/download/"' in page
    assert "hx-trigger" not in page

    # when the admin downloads the zip
    download = root_client.get(f"/exports/{snapshot.pk}/download/")

    # then it streams the snapshot's folder
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert download["Content-Disposition"] == f'attachment; filename="{name}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == [f"{name}/{f}" for f in ZIP_FILES]
    assert archive.read(f"{name}/manifest.json") == manifest
    listing = root_client.get("/exports/").content.decode()
    assert f'href="/exports/{snapshot.pk}/download/" download>Download zip' in listing


def test_the_download_is_404_until_the_zip_exists(lead_client: Client):
    pending = ExportSnapshot.objects.create(batch_names=["demo"], ratios=[1, 0, 0])
    gone = ExportSnapshot.objects.create(
        batch_names=["demo"],
        ratios=[1, 0, 0],
        status=JobStatus.SUCCEEDED,
        zip_path="exports/export-99999.zip",
    )

    assert lead_client.get(f"/exports/{pending.pk}/download/").status_code == 404
    assert lead_client.get(f"/exports/{gone.pk}/download/").status_code == 404
    assert lead_client.get("/exports/424242/download/").status_code == 404
    assert lead_client.get("/exports/424242/").status_code == 404


def test_the_list_takes_the_same_queries_for_any_number_of_snapshots(
    lead_client: Client, admin_user: User, django_assert_max_num_queries: Any
):
    # given one snapshot, and the list's queries for it
    def snapshot() -> None:
        ExportSnapshot.objects.create(
            batch_names=["demo"],
            ratios=[0.8, 0.1, 0.1],
            created_by=admin_user,
            status=JobStatus.SUCCEEDED,
            counts={
                "splits": {
                    s: {"rows": 1, "prompts": 1, "prompt_label": {"safe": 1}}
                    for s in ("train", "validation", "test")
                },
                "excluded": {"unresolved": 2},
            },
        )

    snapshot()
    with CaptureQueriesContext(connection) as one:
        assert lead_client.get("/exports/").status_code == 200

    # when there are twelve
    for _ in range(11):
        snapshot()

    # then the list takes no more queries
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = lead_client.get("/exports/").content.decode()
    assert page.count("Download zip") == 12
    assert page.count('title="unresolved final label: 2">2</td>') == 12


def test_hostile_names_are_shown_as_text(root_client: Client, queued: list[int]):
    # given a batch and a topic file whose names are markup
    batch = labelled_batch("<script>alert(1)</script>")
    snapshot = start_export(params=ExportParams(batches=(batch.name,)), user=None)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        topic_name="<img src=x onerror=alert(2)>.jsonl"
    )
    run_snapshot(snapshot.pk)

    # when the admin opens the form, the list and the snapshot
    pages = [
        root_client.get(url).content.decode()
        for url in ("/exports/new/", "/exports/", f"/exports/{snapshot.pk}/")
    ]

    # then the names are escaped everywhere, the card included
    for page in pages:
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for page in pages[1:]:
        assert "<img src=x" not in page
        assert "&lt;img src=x onerror=alert(2)&gt;.jsonl" in page
