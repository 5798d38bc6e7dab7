"""Jury runs: which dialogues, votes per judge, decisions, idempotency, cancel/resume.

The judges are `openai`-backend judges talking to a local scripted chat-completions
server (tests/jury/scripted_server.py); the real model runs in test_worker_e2e.py.
"""

import io
import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import JuryDecision, Label, LabelCategory
from jury.models import Backend, Judge, JuryRun, RunJudgeState, RunStatus, Scope
from jury.runs.services import (
    RunError,
    cancel_run,
    judge_chunk,
    missing_work,
    resume_run,
    run_in_process,
    run_progress,
    run_state,
    scope_selection,
    select_dialogues,
    start_run,
)
from jury.runs.state import Waiting
from tests.factories import BatchFactory, DialogueFactory, LabelFactory

pytestmark = pytest.mark.django_db


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


def test_jury_run_command_queues_for_a_judge_nobody_listens_to_and_says_so(
    batch, endpoint, django_capture_on_commit_callbacks
):
    # given a judge whose queue has no worker
    judge("a-keyword", "keyword", endpoint)
    out, err = io.StringIO(), io.StringIO()

    # when a run is queued from the command line (not --sync)
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "jury_run",
            "--batch",
            "jury",
            "--judges",
            "a-keyword",
            "--all-responses",
            stdout=out,
            stderr=err,
        )

    # then the run is queued, and the command says its chunks wait for a worker
    assert JuryRun.objects.get().status == "running"
    assert err.getvalue() == (
        "no worker listening on jury.a-keyword: its chunks wait until one starts "
        "(QUEUES=jury.a-keyword make jury-worker)\n"
    )
    assert "queued" in out.getvalue()


def test_jury_run_command_names_what_is_wrong(batch):
    with pytest.raises(CommandError, match="no batch named 'nope'"):
        call_command("jury_run", "--batch", "nope", "--sync")
    with pytest.raises(CommandError, match="no judge named ghost"):
        call_command("jury_run", "--batch", "jury", "--judges", "ghost", "--sync")
    assert JuryRun.objects.count() == 0


# --- the "humans call unsafe" scope waits for complete human votes (issue 11) -------


def votes(dialogue, *labels: str) -> None:
    for label in labels:
        LabelFactory(dialogue=dialogue, label=label)


@pytest.fixture
def half_voted():
    """Three votes required: one dialogue complete, two still waiting (1 and 2
    votes), all three unsafe so far; a gold item with four votes; a refusal."""
    batch = BatchFactory(name="half-voted", labels_required=3)
    complete = DialogueFactory(batch=batch, response="complete")
    votes(complete, "unsafe", "unsafe", "safe")
    one = DialogueFactory(batch=batch, response="one vote")
    votes(one, "unsafe")
    two = DialogueFactory(batch=batch, response="two votes")
    votes(two, "unsafe", "unsafe")
    split = DialogueFactory(batch=batch, response="two votes, split")
    votes(split, "unsafe", "safe")  # no unsafe majority so far: not waiting for it
    gold = DialogueFactory(batch=batch, response="gold", is_gold=True)
    votes(gold, "unsafe", "unsafe", "unsafe", "safe")  # every annotator sees gold
    refusal = DialogueFactory(
        batch=batch, response="I can't help with that.", augmentation="refusal"
    )
    votes(refusal, "unsafe", "unsafe", "unsafe")
    return batch, {"complete": complete, "one": one, "two": two, "gold": gold}


def test_the_unsafe_scope_takes_only_dialogues_whose_human_votes_are_complete(
    half_voted,
):
    batch, d = half_voted

    # when the default scope selects
    selection = scope_selection(batch=batch, scope=Scope.UNSAFE_MAJORITY)

    # then only complete votes count (the gold item has more than required); the
    # two that wait are counted, with the votes they have
    assert selection.dialogue_ids == sorted([d["complete"].pk, d["gold"].pk])
    assert select_dialogues(batch=batch, scope=Scope.UNSAFE_MAJORITY) == (
        selection.dialogue_ids
    )
    assert selection.waiting == Waiting(
        dialogues=2, vote_counts=(1, 2), labels_required=3
    )
    assert selection.left_out == 2
    assert selection.waiting_text() == (
        "2 left out: still waiting for human votes (1 or 2 of 3)"
    )


def test_a_lead_can_widen_the_scope_to_dialogues_still_waiting(half_voted):
    batch, d = half_voted

    selection = scope_selection(
        batch=batch, scope=Scope.UNSAFE_MAJORITY, include_incomplete=True
    )

    assert selection.dialogue_ids == sorted(
        [d["complete"].pk, d["one"].pk, d["two"].pk, d["gold"].pk]
    )
    assert selection.left_out == 0
    assert selection.waiting_text() == (
        "2 included although still waiting for human votes (1 or 2 of 3)"
    )


def test_a_run_stores_what_its_scope_left_out(half_voted, endpoint):
    batch, d = half_voted
    keyword = judge("a-keyword", "keyword", endpoint)

    run = start_run(batch=batch, judges=[keyword], enqueue=False)

    assert sorted(run.targets.values_list("dialogue_id", flat=True)) == sorted(
        [d["complete"].pk, d["gold"].pk]
    )
    run.refresh_from_db()
    assert (run.include_incomplete, run.waiting_for_votes) == (
        False,
        {"dialogues": 2, "vote_counts": [1, 2], "labels_required": 3},
    )


def test_a_run_with_only_incomplete_votes_is_refused_with_the_count(endpoint):
    # given a batch whose only unsafe-leaning dialogue has 1 of 3 votes
    batch = BatchFactory(name="early", labels_required=3)
    votes(DialogueFactory(batch=batch), "unsafe")
    keyword = judge("a-keyword", "keyword", endpoint)

    # when a run is started with the default scope, then it is refused with why
    with pytest.raises(RunError) as refused:
        start_run(batch=batch, judges=[keyword])
    assert str(refused.value) == (
        "No dialogue to judge: no response in this batch has an unsafe human "
        "majority with complete votes yet. 1 left out: still waiting for human "
        "votes (1 of 3)."
    )
    # and no run was written
    assert JuryRun.objects.count() == 0


def test_jury_run_command_widens_the_scope_and_reports_what_was_left_out(
    half_voted, endpoint
):
    batch, _ = half_voted
    judge("a-keyword", "keyword", endpoint)

    def run_command(*extra: str) -> dict:
        out = io.StringIO()
        call_command(
            "jury_run",
            "--batch",
            batch.name,
            "--judges",
            "a-keyword",
            "--sync",
            "--json",
            *extra,
            stdout=out,
        )
        return json.loads(out.getvalue())

    default = run_command()
    assert (default["dialogues"], default["left_out"]) == (2, 2)
    assert default["waiting_for_votes"] == {
        "dialogues": 2,
        "vote_counts": [1, 2],
        "labels_required": 3,
        "included": False,
    }
    widened = run_command("--include-incomplete")
    assert (widened["dialogues"], widened["left_out"]) == (4, 0)
    assert widened["waiting_for_votes"]["included"] is True
    assert JuryRun.objects.get(pk=widened["run"]).include_incomplete is True


# --- what the worker records: the judge's state, failures (issue 11) ----------------


def test_judging_records_the_judge_state_once_per_worker_process(batch, endpoint):
    # given a run of one judge in chunks of one dialogue
    keyword = judge("a-keyword", "keyword", endpoint)
    run = start_run(
        batch=batch,
        judges=[keyword],
        scope=Scope.ALL_RESPONSES,
        chunk_size=1,
        enqueue=False,
    )
    first, *rest = [chunk for _, chunk in missing_work(run)]

    # when the first chunk runs in a worker named w1@host
    judge_chunk(run_id=run.pk, judge_id=keyword.pk, dialogue_ids=first, worker="w1@h")

    # then the judge is running in that process, its rate counted from no vote
    state = RunJudgeState.objects.get(run=run, judge=keyword)
    assert (state.phase, state.worker, state.worker_pid, state.votes_at_start) == (
        "running",
        "w1@h",
        os.getpid(),
        0,
    )
    assert state.loading_since <= state.running_since
    written_at = state.updated_at

    # when the other chunks run in the same process, the state is only read
    for chunk in rest:
        judge_chunk(
            run_id=run.pk, judge_id=keyword.pk, dialogue_ids=chunk, worker="w1@h"
        )
    state.refresh_from_db()
    assert (state.phase, state.updated_at) == ("running", written_at)

    # and the run page's words: done
    run.refresh_from_db()
    assert run_state(run, run_progress(run)).headline == "Done"


def test_a_judge_whose_model_cannot_load_fails_the_run_with_the_error(batch):
    # given a judge whose model file does not exist
    broken = Judge.objects.create(
        name="broken", backend=Backend.TRANSFORMERS, model="/nowhere/model.gguf"
    )
    run = start_run(
        batch=batch, judges=[broken], scope=Scope.ALL_RESPONSES, enqueue=False
    )

    # when it runs in process
    with pytest.raises(RunError, match="judge broken failed"):
        run_in_process(run=run)

    # then the run failed with the judge's error, and no vote was written
    run.refresh_from_db()
    error = "BackendError: judge 'broken': model '/nowhere/model.gguf' does not exist"
    assert (run.status, run.error) == ("failed", f"broken: {error}")
    assert run.finished_at is not None
    state = RunJudgeState.objects.get(run=run)
    assert (state.phase, state.error) == ("failed", error)
    assert Label.objects.filter(run_key=run.key).count() == 0
    # and chunks still queued for it do nothing
    ids = list(run.targets.values_list("dialogue_id", flat=True))
    assert judge_chunk(run_id=run.pk, judge_id=broken.pk, dialogue_ids=ids) == 0

    # when the lead resumes it, the error is cleared and the judge is queued again
    resume_run(run=run)
    run.refresh_from_db()
    assert (run.status, run.error, run.finished_at) == ("running", "", None)
    assert not RunJudgeState.objects.filter(run=run).exists()


def test_a_run_moves_only_as_its_transitions_allow(batch, endpoint):
    keyword = judge("a-keyword", "keyword", endpoint)
    run = start_run(
        batch=batch, judges=[keyword], scope=Scope.ALL_RESPONSES, enqueue=False
    )
    run_in_process(run=run)

    # a finished run cannot be cancelled, failed or resumed
    assert JuryRun.move_status(run.pk, RunStatus.CANCELLED) is False
    assert JuryRun.move_status(run.pk, RunStatus.FAILED, error="late") is False
    with pytest.raises(RunError, match="complete"):
        resume_run(run=run)
    run.refresh_from_db()
    assert (run.status, run.error) == ("done", "")
