"""Services send tasks by name (annotation.enqueue), once their transaction commits."""

import pytest
from celery import current_app

from annotation import enqueue, tasks

pytestmark = pytest.mark.django_db


def test_a_task_is_sent_only_once_the_transaction_commits(
    monkeypatch, django_capture_on_commit_callbacks
):
    # given the export task, captured where it would be sent
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.run_export, "delay", lambda *args: sent.append(args))

    # when a service asks for it inside a transaction
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue.later("annotation.run_export", 7)

        # then nothing is sent before the commit
        assert sent == []

    # and once it commits, the task named goes, once
    for callback in callbacks:
        callback()
    assert sent == [(7,)]


def test_a_queue_and_the_task_handle_reach_who_asked(
    monkeypatch, django_capture_on_commit_callbacks
):
    class Sent:
        id = "task-1"

    calls: list[tuple] = []

    def apply_async(args, **options):
        calls.append((args, options))
        return Sent()

    monkeypatch.setattr(tasks.run_import, "apply_async", apply_async)
    handles: list[str] = []

    with django_capture_on_commit_callbacks(execute=True):
        enqueue.later(
            "annotation.run_import",
            3,
            queue="imports",
            then=lambda result: handles.append(result.id),
        )

    assert calls == [((3,), {"queue": "imports"})]
    assert handles == ["task-1"]


def test_a_task_this_process_does_not_know_is_sent_by_name(monkeypatch):
    # given a task only another worker has (a GPU judge's, say)
    sent: list[tuple] = []
    monkeypatch.setattr(
        current_app,
        "send_task",
        lambda name, args, **options: sent.append((name, args, options)),
    )

    enqueue.send("elsewhere.only", 1, 2, queue="jury.gpu")

    assert sent == [("elsewhere.only", (1, 2), {"queue": "jury.gpu"})]
