"""A lead reads a batch's agreement dashboard: warnings, tiles, the six charts and
their numbers, on a batch with disagreement, a fast annotator and a jury."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.agreement.services import fingerprint
from annotation.facade import ModelVoteIn, record_jury_decision, record_model_votes
from annotation.models import (
    AgreementReport,
    Batch,
    JobStatus,
    Label,
    LabelCategory,
    VoteKind,
)
from taxonomy.models import Category
from tests.annotation.agreement.data import sample_report
from tests.browser.conftest import log_in, screenshot
from tests.factories import BatchFactory, DialogueFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.browser

LABELS = ("safe", "needs_caution", "unsafe")
CHARTS = (
    "kappa-heatmap",
    "alpha-bars",
    "label-distribution",
    "time-boxplots",
    "over-time",
    "jury-confusion",
)


def seed_batch() -> None:
    """24 dialogues labelled by four annotators over two weeks (dan always says safe,
    in about two seconds), 16 of them judged by two judges with a decision."""
    rng = random.Random(7)
    people = [UserFactory(username=n) for n in ("anna", "ben", "cleo", "dan")]
    batch = BatchFactory(name="round-3")
    categories = list(
        Category.objects.filter(taxonomy_id=batch.taxonomy_id).order_by("order")[:3]
    )
    dialogues = [DialogueFactory(batch=batch) for _ in range(24)]
    for i, dialogue in enumerate(dialogues):
        truth = LABELS[(i * 7) % 3]
        for person in people:
            if person.username == "dan":
                value, seconds = "safe", rng.uniform(1.2, 2.6)
            else:
                value = truth if rng.random() < 0.8 else rng.choice(LABELS)
                seconds = rng.uniform(7, 70)
            vote = Label.objects.create(
                dialogue=dialogue,
                kind=VoteKind.HUMAN,
                annotator=person,
                label=value,
                time_spent_ms=int(seconds * 1000),
            )
            if value != "safe":
                chosen = {categories[i % 3], rng.choice(categories)}
                for position, category in enumerate(chosen):
                    LabelCategory.objects.create(
                        label=vote, category=category, position=position
                    )
    Label.objects.filter(dialogue__in=dialogues[:12]).update(
        created_at=timezone.now() - timedelta(days=7)
    )
    judged = dialogues[:16]
    votes = []
    for i, dialogue in enumerate(judged):
        truth = "safe" if LABELS[(i * 7) % 3] == "safe" else "unsafe"
        other = "unsafe" if truth == "safe" else "safe"
        votes += [
            ModelVoteIn(
                dialogue_id=dialogue.pk, judge="gemma", valid=True, label=truth
            ),
            ModelVoteIn(
                dialogue_id=dialogue.pk,
                judge="llama-guard",
                valid=True,
                label=truth if i % 4 else other,
            ),
        ]
    record_model_votes(run_key="run-1", votes=votes)
    for i, dialogue in enumerate(judged):
        truth = "safe" if LABELS[(i * 7) % 3] == "safe" else "unsafe"
        record_jury_decision(
            dialogue_id=dialogue.pk,
            run_key="run-1",
            decision=truth if i % 4 else "needs_review",
            categories=[],
            valid_votes=2,
            total_votes=2,
            agreement=1.0 if i % 4 else 0.5,
            reason="judges agree" if i % 4 else "judges disagree",
        )


def test_lead_reads_the_agreement_dashboard(page, live_server):
    # given a batch with disagreement, a fast annotator and a jury, and its lead
    LeadFactory(username="lena")
    seed_batch()
    log_in(page, live_server, "lena")

    # when the lead goes from the batch's progress page to its agreement dashboard
    page.goto(f"{live_server.url}/batches/round-3/progress/")
    page.get_by_role("navigation", name="Batch round-3").get_by_role(
        "link", name="Agreement"
    ).click()
    page.wait_for_url(f"{live_server.url}/batches/round-3/agreement/")

    # then the report was computed for the page, and dan is warned about at the top
    assert AgreementReport.objects.get(batch__name="round-3").status == (
        JobStatus.SUCCEEDED
    )
    warnings = page.locator(".panel.warnings li")
    assert warnings.filter(has_text="dan").count() == 2  # fast, and far from others
    assert page.locator("#agreement-annotators tr.warned th").all_inner_texts() == [
        "⚠ dan"
    ]
    assert page.locator("#tile-label .metric").count() == 3

    # and each chart is drawn, visible and of a real size
    svgs = page.locator("svg.chart")
    assert svgs.count() == len(CHARTS)
    for slug in CHARTS:
        svg = page.locator(f"#{slug}-svg")
        svg.scroll_into_view_if_needed()
        assert svg.is_visible(), slug
        box = svg.bounding_box()
        assert box is not None, slug
        assert box["width"] > 100, slug
        assert box["height"] > 30, slug
        assert svg.get_attribute("role") == "img"
    assert page.locator("#kappa-heatmap-svg .warned-row").count() == 1
    assert page.locator("#time-boxplots-svg .fast-threshold").count() == 1
    assert page.locator("#time-boxplots-svg .box").count() == 4
    assert "No jury votes" not in page.locator("#jury-confusion-svg").inner_html()

    # when the lead opens the numbers under the heat map
    numbers = page.locator("#kappa-heatmap details.numbers")
    assert not numbers.locator("table").is_visible()
    numbers.get_by_text("Numbers").click()

    # then the pairs' kappas are listed (4 annotators: 6 pairs)
    assert numbers.locator("table").is_visible()
    assert numbers.locator("tbody tr").count() == 6
    screenshot(page, "agreement-dashboard")


def test_the_waiting_page_swaps_the_dashboard_in_when_the_worker_is_done(
    page, live_server
):
    # given a large batch whose report a worker is computing
    LeadFactory(username="lena")
    batch = BatchFactory(name="big")
    AgreementReport.objects.create(
        batch=batch, status=JobStatus.PENDING, requested_at=timezone.now()
    )
    log_in(page, live_server, "lena")

    # when the lead opens the dashboard
    page.goto(f"{live_server.url}/batches/big/agreement/")

    # then it waits, with the Recompute button off
    assert page.locator("#agreement-status").is_visible()
    assert page.get_by_role("button", name="Recompute").is_disabled()
    assert page.locator("svg.chart").count() == 0

    # when the worker stores the report
    AgreementReport.objects.filter(batch=batch).update(
        status=JobStatus.SUCCEEDED,
        data=sample_report(),
        fingerprint=fingerprint(Batch.objects.get(pk=batch.pk)),
        computed_at=timezone.now(),
        duration_ms=900,
    )

    # then the next poll (every 2 s) swaps the dashboard in, and polling stops
    page.locator("#kappa-heatmap-svg").wait_for(state="visible", timeout=10_000)
    assert page.locator("#agreement-status").count() == 0
    assert page.locator("svg.chart").count() == len(CHARTS)
    assert page.get_by_role("button", name="Recompute").is_enabled()
