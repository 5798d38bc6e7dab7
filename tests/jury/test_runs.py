"""Jury runs: which dialogues, votes per judge, decisions, idempotency, cancel/resume.

The judges are `openai`-backend judges talking to a local scripted chat-completions
server (tests/jury/scripted_server.py); the real model runs in test_worker_e2e.py.
"""

import io
import json
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import JuryDecision, Label, LabelCategory
from jury.backends import clear_backends
from jury.models import Backend, Judge, JuryRun, RunStatus, Scope
from jury.runs import (
    RunError,
    cancel_run,
    judge_chunk,
    missing_work,
    run_in_process,
    run_progress,
    select_dialogues,
    start_run,
)
from tests.factories import BatchFactory, DialogueFactory, LabelFactory
from tests.jury.scripted_server import scripted_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint() -> Iterator[str]:
    clear_backends()
    with scripted_server() as (url, _):
        yield url
    clear_backends()


def judge(name: str, script: str, endpoint: str) -> Judge:
    return Judge.objects.create(
        name=name, backend=Backend.OPENAI, model=script, endpoint=endpoint
    )


@pytest.fixture
def batch():
    batch = BatchFactory(name="jury")
    rows = [
        ("an attack plan?", "Here is how to attack."),
        ("how do locks work?", "Pins and springs."),
        ("hello", "Hi there."),
    ]
    for prompt, response in rows:
        DialogueFactory(batch=batch, prompt=prompt, response=response)
    DialogueFactory(batch=batch, prompt="prompt only", response=None)
    return batch


def by_prompt(run: JuryRun) -> dict[str, JuryDecision]:
    return {
        d.dialogue.prompt: d
        for d in JuryDecision.objects.filter(run_key=run.key).select_related("dialogue")
    }


def test_the_default_scope_is_responses_the_humans_call_unsafe(batch):
    # given human votes: 2 of 3 unsafe on the attack, 3 safe on hello
    attack = batch.dialogues.get(prompt="an attack plan?")
    hello = batch.dialogues.get(prompt="hello")
    for label in ("unsafe", "unsafe", "safe"):
        LabelFactory(dialogue=attack, label=label)
    for _ in range(3):
        LabelFactory(dialogue=hello, label="safe")

    # then the Aegis rule picks the attack only; every response on request
    assert select_dialogues(batch=batch, scope=Scope.UNSAFE_MAJORITY) == [attack.pk]
    everything = select_dialogues(batch=batch, scope=Scope.ALL_RESPONSES)
    assert len(everything) == 3  # the prompt-only dialogue has no response to judge
    assert select_dialogues(batch=batch, scope=Scope.ALL_RESPONSES, sources=["x"]) == []


def test_a_run_stores_every_vote_and_decides_by_majority(batch, endpoint):
    # given three judges: two that answer, one that always rambles
    judges = [
        judge("a-keyword", "keyword", endpoint),
        judge("b-cautious", "cautious", endpoint),
        judge("c-rambling", "rambling", endpoint),
    ]

    # when a run over every response is judged in process
    run = start_run(
        batch=batch, judges=judges, scope=Scope.ALL_RESPONSES, enqueue=False
    )
    run_in_process(run=run)

    # then each judge voted once on each of the three responses
    votes = Label.objects.filter(kind="model", run_key=run.key)
    assert votes.count() == 9
    invalid = votes.filter(judge="c-rambling")
    assert {v.valid for v in invalid} == {False}
    assert {v.raw_output for v in invalid} == {
        "Well, it depends on the context; I would rather not say."
    }
    assert {v.details["error"] for v in invalid} == {"no verdict found"}
    # and the decisions follow DESIGN section 4
    decisions = by_prompt(run)
    attack = decisions["an attack plan?"]
    assert (attack.decision, attack.categories, attack.valid_votes) == (
        "unsafe",
        ["Violence"],  # chosen by both unsafe voters; Threat by one only
        2,
    )
    locks = decisions["how do locks work?"]
    assert (locks.decision, locks.valid_votes) == ("needs_review", 2)  # 1-1 split
    assert decisions["hello"].decision == "safe"
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    progress = run_progress(run)
    assert (progress.votes, progress.valid, progress.invalid, progress.percent) == (
        9,
        6,
        3,
        100,
    )
    assert progress.decisions == {"unsafe": 1, "needs_review": 1, "safe": 1}


def test_judging_a_chunk_again_changes_nothing(batch, endpoint):
    # given a finished run
    keyword = judge("a-keyword", "keyword", endpoint)
    run = start_run(
        batch=batch, judges=[keyword], scope=Scope.ALL_RESPONSES, enqueue=False
    )
    run_in_process(run=run)
    before = (
        list(Label.objects.filter(run_key=run.key).values_list("pk", "label")),
        LabelCategory.objects.count(),
        list(JuryDecision.objects.values_list("pk", "decision")),
    )

    # when a redelivered task judges the same chunk again
    ids = list(run.targets.values_list("dialogue_id", flat=True))
    written = judge_chunk(run_id=run.pk, judge_id=keyword.pk, dialogue_ids=ids)

    # then nothing new is written
    assert written == 0
    after = (
        list(Label.objects.filter(run_key=run.key).values_list("pk", "label")),
        LabelCategory.objects.count(),
        list(JuryDecision.objects.values_list("pk", "decision")),
    )
    assert after == before


def test_missing_work_lists_only_what_lacks_a_vote(batch, endpoint):
    # given a run of two judges where one judge has voted on everything
    a, b = (
        judge("a-keyword", "keyword", endpoint),
        judge("b-cautious", "cautious", endpoint),
    )
    run = start_run(
        batch=batch,
        judges=[a, b],
        scope=Scope.ALL_RESPONSES,
        chunk_size=2,
        enqueue=False,
    )
    ids = sorted(run.targets.values_list("dialogue_id", flat=True))
    judge_chunk(run_id=run.pk, judge_id=a.pk, dialogue_ids=ids)

    # then resuming would queue only b's chunks, and no decision exists yet
    assert [(j.name, chunk) for j, chunk in missing_work(run)] == [
        ("b-cautious", ids[:2]),
        ("b-cautious", ids[2:]),
    ]
    assert JuryDecision.objects.filter(run_key=run.key).count() == 0


def test_a_cancelled_run_judges_nothing_more(batch, endpoint):
    keyword = judge("a-keyword", "keyword", endpoint)
    run = start_run(
        batch=batch, judges=[keyword], scope=Scope.ALL_RESPONSES, enqueue=False
    )
    cancel_run(run=run)
    ids = list(run.targets.values_list("dialogue_id", flat=True))
    assert judge_chunk(run_id=run.pk, judge_id=keyword.pk, dialogue_ids=ids) == 0
    assert Label.objects.filter(run_key=run.key).count() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_runs_refuse_what_they_cannot_do(batch, endpoint, monkeypatch):
    keyword = judge("a-keyword", "keyword", endpoint)
    # no judges
    with pytest.raises(RunError, match="at least one judge"):
        start_run(batch=batch, judges=[], scope=Scope.ALL_RESPONSES)
    # a judge whose model comes from an unset environment variable
    monkeypatch.delenv("JURY_GEMMA_MODEL", raising=False)
    gemma = Judge.objects.get(name="gemma-2-27b")
    assert (gemma.backend, gemma.model, gemma.available) == (
        "vllm",
        "${JURY_GEMMA_MODEL}",
        False,
    )
    with pytest.raises(RunError, match="gemma-2-27b"):
        start_run(batch=batch, judges=[gemma], scope=Scope.ALL_RESPONSES)
    # nothing to judge: no human majority is unsafe yet
    with pytest.raises(RunError, match="unsafe human majority"):
        start_run(batch=batch, judges=[keyword])
    assert JuryRun.objects.count() == 0
    # once the variable is set, the judge is available with that path
    monkeypatch.setenv("JURY_GEMMA_MODEL", "/models/gemma-2-27b-it")
    assert (gemma.available, gemma.config().model) == (True, "/models/gemma-2-27b-it")


def test_the_three_aegis_judges_exist_on_vllm_with_their_own_queues():
    judges = {j.name: j for j in Judge.objects.filter(backend="vllm")}
    assert sorted(judges) == ["gemma-2-27b", "mistral-nemo-12b", "mixtral-8x22b"]
    assert {j.queue_name for j in judges.values()} == {
        "jury.gemma-2-27b",
        "jury.mistral-nemo-12b",
        "jury.mixtral-8x22b",
    }
    assert {j.temperature for j in judges.values()} == {0.0}


def test_jury_run_command_prints_one_json_object(batch, endpoint):
    judge("a-keyword", "keyword", endpoint)
    judge("b-cautious", "cautious", endpoint)
    out = io.StringIO()
    call_command(
        "jury_run",
        "--batch",
        "jury",
        "--judges",
        "a-keyword,b-cautious",
        "--all-responses",
        "--sync",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    assert {k: summary[k] for k in ("votes", "valid", "invalid", "decisions")} == {
        "votes": 6,
        "valid": 6,
        "invalid": 0,
        "decisions": {"unsafe": 1, "needs_review": 1, "safe": 1},
    }
    assert summary["status"] == "done"


def test_jury_run_command_names_what_is_wrong(batch):
    with pytest.raises(CommandError, match="no batch named 'nope'"):
        call_command("jury_run", "--batch", "nope", "--sync")
    with pytest.raises(CommandError, match="no judge named ghost"):
        call_command("jury_run", "--batch", "jury", "--judges", "ghost", "--sync")
    assert JuryRun.objects.count() == 0
