"""The exports API: list (leads), start (admins), poll and download."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from annotation.export.services import run_snapshot
from annotation.models import ExportSnapshot, JobStatus
from tests.annotation.export.test_views import ZIP_FILES, labelled_batch
from tests.factories import AdminFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from annotation import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.run_export, "delay", sent.append)
    return sent


def _client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}"
    )
    return client


@pytest.fixture
def root() -> APIClient:
    return _client(AdminFactory(username="root"))


@pytest.fixture
def lena() -> APIClient:
    return _client(LeadFactory(username="lena"))


def test_annotators_and_anonymous_callers_are_refused(queued: list[int]):
    snapshot = ExportSnapshot.objects.create(batch_names=["demo"], ratios=[1, 0, 0])
    anna = _client(UserFactory(username="anna"))

    assert APIClient().get(f"{API}/exports").status_code == 401
    assert anna.get(f"{API}/exports").status_code == 403
    assert anna.get(f"{API}/exports/{snapshot.pk}").status_code == 403
    assert anna.get(f"{API}/exports/{snapshot.pk}/download").status_code == 403
    response = anna.post(f"{API}/exports", {"batches": ["demo"]}, format="json")
    assert response.status_code == 403
    assert ExportSnapshot.objects.count() == 1
    assert queued == []


def test_leads_list_exports_but_may_not_start_one(lena: APIClient, queued: list[int]):
    # given a batch and one earlier export
    labelled_batch("demo")
    earlier = ExportSnapshot.objects.create(batch_names=["demo"], ratios=[1, 0, 0])

    # when a lead lists exports and tries to start one
    listing = lena.get(f"{API}/exports")
    started = lena.post(f"{API}/exports", {"batches": ["demo"]}, format="json")

    # then they see the list, and are refused the start
    assert listing.status_code == 200
    assert listing.json()["count"] == 1
    assert [e["id"] for e in listing.json()["results"]] == [earlier.pk]
    assert started.status_code == 403
    assert started.json() == {
        "detail": "Only admins may start exports.",
        "code": "permission_denied",
    }
    assert ExportSnapshot.objects.count() == 1
    assert queued == []


def test_an_admin_starts_polls_and_downloads_an_export(
    root: APIClient, queued: list[int], django_capture_on_commit_callbacks: Any
):
    # given a labelled batch
    labelled_batch("demo")

    # when the admin starts an export
    with django_capture_on_commit_callbacks(execute=True):
        response = root.post(
            f"{API}/exports",
            {
                "batches": ["demo"],
                "seed": 3,
                "ratios": [0.7, 0.15, 0.15],
                "needs_caution_policy": "permissive",
                "include_refusals": False,
            },
            format="json",
        )

    # then it is recorded and queued, with a URL to poll
    snapshot = ExportSnapshot.objects.get()
    assert response.status_code == 201
    body = response.json()
    assert queued == [snapshot.pk]
    assert body["id"] == snapshot.pk
    assert body["url"] == f"http://testserver{API}/exports/{snapshot.pk}"
    assert {k: body[k] for k in ("batches", "seed", "ratios")} == {
        "batches": ["demo"],
        "seed": 3,
        "ratios": [0.7, 0.15, 0.15],
    }
    assert (body["needs_caution_policy"], body["include_refusals"]) == (
        "permissive",
        False,
    )
    assert (body["status"], body["percent"], body["finished"]) == ("pending", 0, False)
    assert (body["download_url"], body["created_by"]) == (None, "root")

    # and the download is 404 until the worker has written it
    assert root.get(f"{API}/exports/{snapshot.pk}/download").status_code == 404

    # when the worker has run it and the admin polls
    run_snapshot(snapshot.pk)
    polled = root.get(body["url"]).json()

    # then the snapshot is done, with its counts and a download URL
    assert (polled["status"], polled["phase"], polled["percent"]) == (
        "succeeded",
        "done",
        100,
    )
    assert polled["error"] == ""
    assert polled["counts"]["excluded"] == {"unresolved": 1}
    splits = polled["counts"]["splits"]
    assert sum(splits[s]["rows"] for s in ("train", "validation", "test")) == 6
    name = f"export-{snapshot.pk:05d}"
    assert polled["download_url"] == (
        f"http://testserver{API}/exports/{snapshot.pk}/download"
    )

    # and the download is the snapshot's zip, whatever the client accepts
    download = root.get(polled["download_url"], HTTP_ACCEPT="application/zip")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert download["Content-Disposition"] == f'attachment; filename="{name}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == [f"{name}/{f}" for f in ZIP_FILES]
    manifest = json.loads(archive.read(f"{name}/manifest.json"))
    assert manifest["parameters"]["seed"] == 3
    assert manifest["parameters"]["needs_caution_policy"] == "permissive"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"batches": []}, {"batches": ["choose at least one batch"]}),
        ({"batches": ["nope"]}, {"batches": ["no batch named 'nope'"]}),
        (
            {"batches": ["demo"], "ratios": [0.5, 0.5, 0.5]},
            {"ratios": ["ratios must add up to 1, not 1.5: [0.5, 0.5, 0.5]"]},
        ),
        (
            {"batches": ["demo"], "ratios": [0.5, 0.5]},
            {"ratios": ["Ensure this field has at least 3 elements."]},
        ),
        (
            {"batches": ["demo"], "seed": -1},
            {"seed": ["Ensure this value is greater than or equal to 0."]},
        ),
        (
            {"batches": ["demo"], "needs_caution_policy": "lenient"},
            {"needs_caution_policy": ['"lenient" is not a valid choice.']},
        ),
        ({}, {"batches": ["This field is required."]}),
    ],
)
def test_bad_parameters_are_400_by_field_and_record_nothing(
    root: APIClient,
    queued: list[int],
    body: dict[str, Any],
    errors: dict[str, list[str]],
):
    labelled_batch("demo")

    response = root.post(f"{API}/exports", body, format="json")

    assert response.status_code == 400
    assert response.json() == errors
    assert not ExportSnapshot.objects.exists()
    assert queued == []


def test_a_multipart_start_takes_a_topic_file(
    root: APIClient, queued: list[int], media: Path
):
    # given a batch and a CantTalkAboutThis JSON array of one conversation
    labelled_batch("demo")
    topics = json.dumps(
        [
            {
                "domain": "travel",
                "scenario": "booking",
                "system_instruction": "Only travel.",
                "conversation": [
                    {"role": "user", "content": "Book me a flight"},
                    {"role": "assistant", "content": "Where to?"},
                ],
                "distractors": [],
            }
        ]
    ).encode()

    # when the admin posts the parameters and the file as a form
    response = root.post(
        f"{API}/exports",
        {
            "batches": ["demo"],
            "ratios": ["0.8", "0.1", "0.1"],
            "topic_file": SimpleUploadedFile("travel.json", topics),
        },
        format="multipart",
    )

    # then the export keeps the refusals by default and blends the file in
    assert response.status_code == 201
    body = response.json()
    assert (body["topic_file"], body["include_refusals"]) == ("travel.json", True)
    snapshot = run_snapshot(body["id"])
    assert snapshot.status == JobStatus.SUCCEEDED
    splits = snapshot.counts["splits"]
    assert sum(splits[s]["topic_following"] for s in splits) == 1
    assert Path(snapshot.topic_file).read_bytes() == topics


def test_a_topic_file_of_another_kind_is_400(
    root: APIClient, queued: list[int], media: Path
):
    labelled_batch("demo")

    response = root.post(
        f"{API}/exports",
        {"batches": ["demo"], "topic_file": SimpleUploadedFile("t.csv", b"a,b\n")},
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json() == {
        "topic_file": ["Upload a CantTalkAboutThis file: .json (an array) or .jsonl."]
    }
    assert not ExportSnapshot.objects.exists()
    assert not (media / "uploads").exists()


def test_a_failed_export_reports_its_error(root: APIClient, queued: list[int]):
    # given an export whose topic file holds a record without a conversation
    labelled_batch("demo")
    response = root.post(
        f"{API}/exports",
        {
            "batches": ["demo"],
            "topic_file": SimpleUploadedFile(
                "t.jsonl", b'{"domain": "x", "scenario": "y"}\n'
            ),
        },
        format="multipart",
    )
    run_snapshot(response.json()["id"])

    # when the admin polls it
    polled = root.get(response.json()["url"]).json()

    # then it failed, says why, and has nothing to download
    assert (polled["status"], polled["finished"]) == ("failed", True)
    assert polled["error"] == "topic_file: line 1: missing field 'system_instruction'"
    assert polled["download_url"] is None
    download = root.get(f"{API}/exports/{polled['id']}/download")
    assert download.status_code == 404


def test_unknown_exports_are_404(lena: APIClient):
    assert lena.get(f"{API}/exports/424242").status_code == 404
    assert lena.get(f"{API}/exports/424242/download").status_code == 404


def test_the_schema_documents_the_export_calls(lena: APIClient):
    # The one schema URL (config/urls.py), beside the versioned API.
    schema = lena.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert set(schema["paths"]["/api/v1/exports"]) == {"get", "post"}
    assert set(schema["paths"]["/api/v1/exports/{id}"]) == {"get"}
    assert set(schema["paths"]["/api/v1/exports/{id}/download"]) == {"get"}


@pytest.mark.parametrize("query", ["offset=null", "limit=0", "limit=x", "offset=-1"])
def test_a_page_that_is_not_a_number_is_400(lena: APIClient, query: str):
    # DRF's paginator read `?offset=null` as 0; the schema says an integer
    response = lena.get(f"{API}/exports?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [query.split("=")[0]]


def test_unknown_exports_answer_the_api_error_shape(lena: APIClient):
    response = lena.get(f"{API}/exports/424242")

    assert response.json() == {"detail": "No such export.", "code": "not_found"}
