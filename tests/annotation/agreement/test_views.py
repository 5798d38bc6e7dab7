"""The leads' agreement dashboard: who sees it, its charts, its waiting state while a
worker computes, Recompute, the JSON download, and its cost in queries."""

import json
import time
import xml.etree.ElementTree as ET

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from annotation.agreement.services import fingerprint, report_for
from annotation.models import AgreementReport, Batch, JobStatus, Label, VoteKind
from tests.annotation.agreement.data import SCRIPT, sample_report
from tests.factories import BatchFactory, DialogueFactory, UserFactory

CHART_IDS = (
    "kappa-heatmap-svg",
    "alpha-bars-svg",
    "label-distribution-svg",
    "time-boxplots-svg",
    "over-time-svg",
    "jury-confusion-svg",
)


def seed_votes(batch: Batch, people: list[User], n_dialogues: int) -> None:
    """Every person labels every dialogue; the last disagrees on every third one."""
    labels = ("safe", "needs_caution", "unsafe")
    for i in range(n_dialogues):
        dialogue = DialogueFactory(batch=batch)
        for j, person in enumerate(people):
            value = labels[i % 3]
            if j == len(people) - 1 and i % 3 == 0:
                value = "unsafe"
            Label.objects.create(
                dialogue=dialogue,
                kind=VoteKind.HUMAN,
                annotator=person,
                label=value,
                time_spent_ms=1_000 if j == len(people) - 1 else 15_000 + 500 * i,
            )


@pytest.fixture
def people(db: None) -> list[User]:
    return [UserFactory(username=name) for name in ("anna", "ben", SCRIPT)]


def cached(batch: Batch, data: dict | None = None, **fields: object) -> AgreementReport:
    """A report row as a worker leaves it (current unless told otherwise)."""
    # Read back: a fresh factory's policy is an enum member, whose repr would make
    # another fingerprint than the stored string's.
    batch = Batch.objects.get(pk=batch.pk)
    values: dict[str, object] = {
        "fingerprint": fingerprint(batch),
        "status": JobStatus.SUCCEEDED,
        "data": data,
        "computed_at": timezone.now(),
        "duration_ms": 1234,
    }
    return AgreementReport.objects.create(batch=batch, **(values | fields))


# --- who may see it ----------------------------------------------------------------


def test_annotators_get_403_and_nothing_is_computed(annotator_client: Client) -> None:
    # given a batch with votes and no report
    BatchFactory(name="demo")

    # when an annotator opens the dashboard, asks for its JSON and presses Recompute
    page = annotator_client.get("/batches/demo/agreement/")
    download = annotator_client.get("/batches/demo/agreement/?format=json")
    recompute = annotator_client.post("/batches/demo/agreement/recompute/")

    # then each is refused, and no report was computed or queued
    assert (page.status_code, download.status_code, recompute.status_code) == (
        403,
        403,
        403,
    )
    assert not AgreementReport.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client: Client, db: None) -> None:
    BatchFactory(name="demo")

    response = client.get("/batches/demo/agreement/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_unknown_batch_is_404(lead_client: Client) -> None:
    assert lead_client.get("/batches/nope/agreement/").status_code == 404


# --- the dashboard ---------------------------------------------------------------


def test_lead_sees_the_dashboard_with_every_chart(
    lead_client: Client, people: list[User]
) -> None:
    # given a small batch with three annotators' votes, one of them fast and apart
    batch = BatchFactory(name="demo")
    seed_votes(batch, people, 9)

    # when the lead opens its dashboard (small: computed in the request)
    response = lead_client.get("/batches/demo/agreement/")

    # then the report was computed and stored, and the page shows its parts
    assert response.status_code == 200
    report = AgreementReport.objects.get(batch=batch)
    assert report.status == JobStatus.SUCCEEDED
    html = response.content.decode()
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}"' in html
    assert html.count("<summary>Numbers</summary>") == 6
    assert 'id="tile-label"' in html
    assert 'id="tile-label_binary"' in html
    # the hostile username is escaped everywhere and flagged (fast, far from others)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    kinds = {w["kind"] for w in report.data["warnings"]}
    assert kinds == {"fast", "low_kappa"}
    assert '<tr class="warned">' in html
    assert html.count('class="warned-row"') == 1  # outlined in the heat map
    # the JSON download and the API are linked
    assert 'href="/batches/demo/agreement/?format=json"' in html
    assert 'href="/api/v1/batches/demo/agreement"' in html


def test_the_page_renders_a_hand_made_report_and_its_undefined_numbers(
    lead_client: Client,
) -> None:
    # given a current report with undefined statistics and a response label
    batch = BatchFactory(name="demo")
    cached(batch, sample_report())

    # when the lead opens the dashboard
    response = lead_client.get("/batches/demo/agreement/")

    # then the tiles show values with intervals, and reasons where undefined
    html = response.content.decode()
    assert '<b>0.612</b> <span class="subtle ci">[0.501, 0.705]</span>' in html
    start = html.index('id="tile-response_label"')
    tile = html[start : html.index("</section>", start)]
    assert tile.count("not defined: no item has two votes") == 3
    # the warnings are listed at the top, before the tiles
    assert html.index('class="panel warnings"') < html.index('class="tiles"')
    assert "18 of 40 votes took under 3 s" in html
    # gold accuracy where there is gold, a note where there is none
    assert '0.750 <span class="subtle small">n 4</span>' in html
    assert "no gold" in html
    # every chart is well-formed SVG
    for chart_id in CHART_IDS:
        start = html.index(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}"'
        )
        ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])


def test_the_page_reads_a_cached_report_in_a_bounded_number_of_queries(
    lead_client: Client, people: list[User], django_assert_max_num_queries
) -> None:
    # given two batches, one with 5 and one with 40 dialogues, their reports current
    small, large = BatchFactory(name="small"), BatchFactory(name="large")
    seed_votes(small, people, 5)
    seed_votes(large, people, 40)
    for name in ("small", "large"):
        report_for(Batch.objects.get(name=name))

    # when the lead opens each dashboard, the queries do not grow with the votes
    for name in ("small", "large"):
        with django_assert_max_num_queries(12):
            response = lead_client.get(f"/batches/{name}/agreement/")
        assert response.status_code == 200
        assert 'id="kappa-heatmap-svg"' in response.content.decode()


# --- waiting for a worker ----------------------------------------------------------


def test_a_pending_report_shows_a_waiting_state_that_polls(
    lead_client: Client,
) -> None:
    # given a report a worker has not finished yet
    batch = BatchFactory(name="demo")
    cached(batch, None, status=JobStatus.PENDING, requested_at=timezone.now())

    # when the lead opens the dashboard
    response = lead_client.get("/batches/demo/agreement/")

    # then it says so and polls every 2 s, with no chart yet
    html = response.content.decode()
    assert 'id="agreement-status"' in html
    assert 'hx-trigger="every 2s"' in html
    assert 'hx-target="#agreement-status"' in html
    assert 'role="progressbar"' in html
    assert "<svg" not in html.split('id="main"')[1]

    # when it polls while the worker is still at it
    poll = lead_client.get(
        "/batches/demo/agreement/",
        headers={"HX-Request": "true", "HX-Target": "agreement-status"},
    )

    # then only the status comes back, still polling
    assert poll.status_code == 200
    assert poll.content.decode().lstrip().startswith('<section id="agreement-status"')
    assert 'hx-trigger="every 2s"' in poll.content.decode()
    assert "HX-Retarget" not in poll


def test_the_poll_swaps_in_the_dashboard_once_the_worker_is_done(
    lead_client: Client,
) -> None:
    # given a report the worker has just finished
    batch = BatchFactory(name="demo")
    cached(batch, sample_report())

    # when the page polls
    poll = lead_client.get(
        "/batches/demo/agreement/",
        headers={"HX-Request": "true", "HX-Target": "agreement-status"},
    )

    # then the whole dashboard replaces the page's, and polling stops
    html = poll.content.decode()
    assert (poll["HX-Retarget"], poll["HX-Reswap"]) == ("#agreement", "outerHTML")
    assert html.lstrip().startswith('<div id="agreement">')
    assert 'id="kappa-heatmap-svg"' in html
    assert "hx-trigger" not in html


def test_a_failed_report_shows_its_error_to_the_poll(lead_client: Client) -> None:
    # given a report whose worker failed
    batch = BatchFactory(name="demo")
    cached(batch, None, status=JobStatus.FAILED, error="MemoryError: <too big>")

    # when the page polls
    poll = lead_client.get(
        "/batches/demo/agreement/",
        headers={"HX-Request": "true", "HX-Target": "agreement-status"},
    )

    # then the error replaces the waiting state (escaped), and polling stops
    html = poll.content.decode()
    assert poll["HX-Retarget"] == "#agreement"
    assert "could not be computed" in html
    assert "MemoryError: &lt;too big&gt;" in html
    assert "hx-trigger" not in html


# --- Recompute ---------------------------------------------------------------------


def test_recompute_queues_the_report_in_celery(
    lead_client: Client, people: list[User], django_capture_on_commit_callbacks
) -> None:
    # given a batch whose report is current
    batch = BatchFactory(name="demo")
    seed_votes(batch, people, 3)
    report_for(batch)

    # when the lead presses Recompute
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lead_client.post("/batches/demo/agreement/recompute/")

    # then the report is pending, its task is queued once the request commits, and
    # the lead is sent back to the dashboard, which now waits for the worker
    assert response.status_code == 302
    assert response["Location"] == "/batches/demo/agreement/"
    report = AgreementReport.objects.get(batch=batch)
    assert report.status == JobStatus.PENDING
    assert report.requested_at is not None
    assert len(callbacks) == 1
    page = lead_client.get("/batches/demo/agreement/")
    assert 'hx-trigger="every 2s"' in page.content.decode()
    assert AgreementReport.objects.get(batch=batch).status == JobStatus.PENDING


def test_recompute_is_a_post(lead_client: Client) -> None:
    BatchFactory(name="demo")

    response = lead_client.get("/batches/demo/agreement/recompute/")

    assert response.status_code == 405
    assert not AgreementReport.objects.exists()


def test_recompute_end_to_end_with_a_worker(
    lead_client: Client, people: list[User], celery_worker: None
) -> None:
    # given a batch with votes
    batch = BatchFactory(name="demo")
    seed_votes(batch, people, 6)

    # when the lead presses Recompute and the page polls until the worker is done
    lead_client.post("/batches/demo/agreement/recompute/")
    deadline = time.monotonic() + 60
    while True:
        poll = lead_client.get(
            "/batches/demo/agreement/",
            headers={"HX-Request": "true", "HX-Target": "agreement-status"},
        )
        if poll.has_header("HX-Retarget") or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    # then the dashboard came back computed by the worker
    assert poll["HX-Retarget"] == "#agreement"
    assert 'id="jury-confusion-svg"' in poll.content.decode()
    assert AgreementReport.objects.get(batch=batch).status == JobStatus.SUCCEEDED


# --- the JSON ----------------------------------------------------------------------


def test_the_json_download_is_the_report(lead_client: Client) -> None:
    batch = BatchFactory(name="demo")
    cached(batch, sample_report())

    response = lead_client.get("/batches/demo/agreement/?format=json")

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="agreement-demo.json"'
    )
    assert json.loads(response.content) == sample_report()


def test_the_json_of_a_pending_report_says_so(lead_client: Client) -> None:
    batch = BatchFactory(name="demo")
    cached(batch, None, status=JobStatus.PENDING, requested_at=timezone.now())

    response = lead_client.get("/batches/demo/agreement/?format=json")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"


# --- the links -------------------------------------------------------------------


def test_the_batch_pages_and_the_batch_list_link_to_the_dashboard(
    lead_client: Client,
) -> None:
    BatchFactory(name="demo")

    progress = lead_client.get("/batches/demo/progress/").content.decode()
    listing = lead_client.get("/batches/").content.decode()

    assert 'href="/batches/demo/agreement/">Agreement</a>' in progress
    assert 'href="/batches/demo/agreement/">Agreement</a>' in listing


def test_an_annotator_with_only_gold_votes_shows_on_the_dashboard(
    lead_client: Client,
) -> None:
    from annotation.review.gold.services import GoldAnswer, mark_gold

    # given a batch where one person labelled only its gold item
    batch = BatchFactory(name="goldonly")
    people = [UserFactory(username=f"g-{k}") for k in range(3)]
    for _ in range(3):
        dialogue = DialogueFactory(batch=batch)
        for person in people:
            Label.objects.create(
                dialogue=dialogue, kind=VoteKind.HUMAN, annotator=person, label="safe"
            )
    Label.objects.create(
        dialogue=dialogue,
        kind=VoteKind.HUMAN,
        annotator=UserFactory(username="gold-only-gail"),
        label="safe",
    )
    mark_gold(dialogue=dialogue, answer=GoldAnswer(label="safe"), by=None)
    # when the lead opens the dashboard
    response = lead_client.get(f"/batches/{batch.name}/agreement/")
    # then the page renders and lists her
    assert response.status_code == 200
    assert "gold-only-gail" in response.content.decode()
