"""The agreement report's lease: the worker computing it holds one, and the reaper
(annotation.leases) queues a report again when that worker is lost, then fails it
for good; a later request schedules it afresh. No worker is killed here: a lost
worker is a running report whose lease ran out."""

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from annotation import enqueue
from annotation.agreement import services
from annotation.agreement.services import report_for, run_scheduled, schedule
from annotation.leases import reap_lost_jobs
from annotation.models import AgreementReport, Batch, JobStatus
from tests.factories import BatchFactory

LOST = (
    "The worker (default@gone:4242) was lost (killed or stopped) during attempt "
    "3 of 3; not queued again. Start it again once the workers are healthy."
)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The tasks services send (by name), instead of a broker."""
    found: list[tuple[object, ...]] = []

    def send(name: str, *args: object, queue: str | None = None) -> SimpleNamespace:
        found.append((name, *args))
        return SimpleNamespace(id=f"task-{len(found)}")

    monkeypatch.setattr(enqueue, "send", send)
    return found


def lost_report(batch: Batch, *, attempts: int, **fields: Any) -> AgreementReport:
    """A report whose worker died mid-compute: running, its lease 5 s out of date."""
    defaults: dict[str, Any] = {
        "status": JobStatus.RUNNING,
        "requested_at": timezone.now(),
        "lease_holder": "default@gone:4242",
        "lease_expires_at": timezone.now() - timedelta(seconds=5),
    }
    return AgreementReport.objects.create(
        batch=batch, attempts=attempts, **(defaults | fields)
    )


@pytest.mark.django_db
def test_a_report_whose_lease_ran_out_is_queued_again_and_computed_once(
    sent: list[tuple[object, ...]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a report whose worker was lost on its first attempt
    batch = BatchFactory()
    report = lost_report(batch, attempts=1)

    # when the reaper runs
    with django_capture_on_commit_callbacks(execute=True):
        reaped = reap_lost_jobs()

    # then the batch's report task is queued again as its second attempt
    assert (reaped.requeued, reaped.failed) == (1, 0)
    assert sent == [("annotation.compute_agreement", batch.pk)]
    report.refresh_from_db()
    assert (report.status, report.attempts, report.lease_expires_at) == (
        "running",
        2,
        None,
    )
    # and a request meanwhile does not queue it a third time
    assert report_for(batch, force_async=True).pk == report.pk
    assert len(sent) == 1
    assert reap_lost_jobs().requeued == 0

    # when a worker takes the queued task
    assert run_scheduled(batch.pk, holder="default@new:1") == "done"

    # then the report is current, computed as attempt 2, its lease released
    report.refresh_from_db()
    assert (report.status, report.attempts, report.error) == ("succeeded", 2, "")
    assert (report.lease_holder, report.lease_expires_at) == ("default@new:1", None)
    assert report.fingerprint == services.fingerprint(batch)


@pytest.mark.django_db
def test_a_report_lost_on_its_last_attempt_fails_and_the_next_request_asks_again(
    sent: list[tuple[object, ...]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a report whose worker was lost on the third of three attempts
    batch = BatchFactory()
    report = lost_report(batch, attempts=3)

    # when the reaper runs
    reaped = reap_lost_jobs()

    # then it failed, saying why, and nothing was queued
    assert (reaped.requeued, reaped.failed) == (0, 1)
    assert sent == []
    report.refresh_from_db()
    assert (report.status, report.error, report.lease_expires_at) == (
        "failed",
        LOST,
        None,
    )

    # when a lead asks for the report again (a cache row: failing is not final)
    with django_capture_on_commit_callbacks(execute=True):
        again = report_for(batch, force_async=True)

    # then it is queued afresh, its attempts counted from the start
    assert (again.pk, again.status, again.attempts, again.error) == (
        report.pk,
        "pending",
        0,
        "",
    )
    assert sent == [("annotation.compute_agreement", batch.pk)]


@pytest.mark.django_db
def test_the_worker_holds_the_lease_while_it_computes(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[object, ...]]
) -> None:
    # given a scheduled report
    batch = BatchFactory()
    schedule(batch)
    seen: list[tuple[str, str, int, bool]] = []
    build = services.build_report

    def watched(batch: Batch) -> dict[str, Any]:
        row = AgreementReport.objects.get(batch=batch)
        seen.append((row.status, row.lease_holder, row.attempts, row.lease_live()))
        return build(batch)

    monkeypatch.setattr(services, "build_report", watched)

    # when the worker computes it
    assert run_scheduled(batch.pk, holder="default@w:7") == "done"

    # then it was running under its lease, which is released afterwards
    assert seen == [("running", "default@w:7", 1, True)]
    assert AgreementReport.objects.get(batch=batch).lease_expires_at is None


@pytest.mark.django_db
def test_a_redelivered_task_computes_nothing(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[object, ...]]
) -> None:
    # given one batch whose report is current and one whose report another worker
    # computes now (its lease is live), requested long ago
    current, busy = BatchFactory(), BatchFactory()
    run_scheduled(current.pk, holder="default@a:1")
    lost_report(
        busy,
        attempts=2,
        requested_at=timezone.now() - timedelta(hours=1),
    )
    AgreementReport.objects.filter(batch=busy).update(
        lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    computed: list[int] = []
    monkeypatch.setattr(services, "compute", lambda batch: computed.append(batch.pk))

    # when the broker delivers their tasks again, a lead asks, the reaper runs
    answers = [run_scheduled(b.pk, holder="default@late:9") for b in (current, busy)]
    asked = report_for(busy, force_async=True)
    reaped = reap_lost_jobs()

    # then nothing is computed or queued, and the live lease is left as it was
    assert answers == ["current", "leased"]
    assert computed == []
    assert sent == []
    assert (reaped.requeued, reaped.failed) == (0, 0)
    assert (asked.status, asked.lease_holder, asked.attempts) == (
        "running",
        "default@gone:4242",
        2,
    )
