"""The demo's recorded jury run: what the CPU judges really said, loaded by seed_demo
so the agreement page, the adjudication queue and the export have jury data."""

import io
import json
from datetime import datetime

import pytest
from django.core.management import call_command

from accounts.models import User
from annotation.adjudication.services import adjudication_queue
from annotation.agreement.services import build_report
from annotation.demo import REVIEWED_BATCH, REVIEWERS, demo_rows, seed_demo
from annotation.models import Batch, JuryDecision, Label, VoteKind
from annotation.rules.derivation import human_majority
from jury.demo import (
    DEMO_JUDGES,
    RECORD_COMMAND,
    RECORDING,
    load_recording,
    read_recording,
    record_run,
    seed_demo_judges,
)
from jury.models import Judge, JuryRun, RunDialogue, RunStatus, Scope
from jury.rules.aggregation import JudgeVote, decide
from jury.rules.parsing import parse_output
from tests.factories import BatchFactory, DialogueFactory

pytestmark = pytest.mark.django_db


def run_seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def reviewed() -> Batch:
    return Batch.objects.get(name=REVIEWED_BATCH)


def human_unsafe(row: dict) -> bool:
    labels = [row["reviews"][r]["label"] for r in REVIEWERS]
    return human_majority(labels, "permissive") == "unsafe"


def test_the_recording_is_what_the_parser_and_the_jury_make_of_the_outputs():
    # given the demo, seeded, and the recorded run
    run_seed()
    recording = read_recording()
    index = reviewed().taxonomy.category_index()
    hashes = dict(reviewed().dialogues.values_list("external_id", "content_hash"))
    responses = {
        row["id"] for row in demo_rows() if row.get("response") or "turns" in row
    }

    # then it covers every response of demo-reviewed, on today's texts, all judges
    assert [d["id"] for d in recording["dialogues"]] == sorted(responses)
    assert all(d["content_hash"] == hashes[d["id"]] for d in recording["dialogues"])
    for dialogue in recording["dialogues"]:
        assert [v["judge"] for v in dialogue["votes"]] == [n for n, _ in DEMO_JUDGES]
        # and every stored parse is what the parser reads in the raw output now
        for vote in dialogue["votes"]:
            parsed = parse_output(vote["raw_output"], index)
            assert (
                vote["valid"],
                vote["label"],
                tuple(vote["categories"]),
                tuple(vote["unknown_categories"]),
                vote["error"],
            ) == (
                parsed.valid,
                parsed.label,
                parsed.categories,
                parsed.unknown,
                parsed.error,
            )
        # and the stored decision is the aggregation of those votes
        outcome = decide(
            [
                JudgeVote(v["judge"], v["valid"], v["label"], tuple(v["categories"]))
                for v in dialogue["votes"]
            ]
        )
        assert dialogue["decision"] == {
            "decision": outcome.decision,
            "categories": list(outcome.categories),
            "valid_votes": outcome.valid_votes,
            "total_votes": outcome.total_votes,
            "agreement": outcome.agreement,
            "reason": outcome.reason,
        }


def test_the_recording_says_it_was_recorded_and_how():
    # given the recorded run
    recording = read_recording()

    # then it names the command that made it, when, how long it took, and where
    assert RECORDING.name == "recorded-run.json"
    assert recording["command"] == RECORD_COMMAND == "python manage.py record_demo_jury"
    assert "real run" in recording["about"]
    assert "not written by hand" in (recording["about"])
    assert datetime.fromisoformat(recording["recorded_at"]).tzinfo is not None
    assert recording["duration_s"] > 0
    assert recording["scope"] == Scope.ALL_RESPONSES
    assert recording["batch"] == REVIEWED_BATCH
    assert {"python", "torch", "transformers", "xgrammar"} <= set(
        recording["environment"]
    )
    # and the judges as they were configured: the demo's CPU slots of SmolLM2
    assert [
        (j["name"], j["backend"], j["model"], j["temperature"], j["prompt_version"])
        for j in recording["judges"]
    ] == [
        (name, "transformers", "smollm2", temperature, "aegis-jury-compact-v1")
        for name, temperature in DEMO_JUDGES
    ]
    assert {j["device"] for j in recording["judges"]} == {"cpu"}
    assert all(j["weights"].startswith("SmolLM2-135M") for j in recording["judges"])
    # and each vote's cost, as measured
    votes = [v for d in recording["dialogues"] for v in d["votes"]]
    assert all(
        v["latency_ms"] > 0 and v["prompt_tokens"] > 0 and v["completion_tokens"] > 0
        for v in votes
    )


def test_seed_demo_loads_the_recorded_run_once():
    # given the recorded run
    recording = read_recording()
    n_dialogues = len(recording["dialogues"])

    # when the demo is seeded
    output = run_seed()

    # then demo-reviewed has one finished run of the three demo judges, dated as
    # recorded, with every recorded vote and a decision per dialogue
    run = JuryRun.objects.get(batch=reviewed())
    assert run.status == RunStatus.DONE
    assert run.scope == Scope.ALL_RESPONSES
    assert sorted(run.judges.values_list("name", flat=True)) == [
        n for n, _ in DEMO_JUDGES
    ]
    assert run.created_at == datetime.fromisoformat(recording["recorded_at"])
    assert RunDialogue.objects.filter(run=run).count() == n_dialogues
    votes = Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key)
    assert votes.count() == 3 * n_dialogues
    assert all(
        v.details["recorded"]
        == {"file": "jury/demo/recorded-run.json", "at": recording["recorded_at"]}
        for v in votes
    )
    stored = {
        d.dialogue.external_id: d.decision
        for d in JuryDecision.objects.filter(run_key=run.key).select_related("dialogue")
    }
    assert stored == {
        d["id"]: d["decision"]["decision"] for d in recording["dialogues"]
    }
    assert f"Recorded jury run {run.pk} on demo-reviewed" in output

    # when it is seeded again
    before = (
        JuryRun.objects.count(),
        RunDialogue.objects.count(),
        Label.objects.count(),
        JuryDecision.objects.count(),
        Judge.objects.count(),
    )
    again = run_seed()

    # then nothing is added
    assert (
        JuryRun.objects.count(),
        RunDialogue.objects.count(),
        Label.objects.count(),
        JuryDecision.objects.count(),
        Judge.objects.count(),
    ) == before
    assert "loaded already" in again


def test_the_recorded_run_says_so_on_its_page(client):
    # given the seeded demo and a lead
    run_seed()
    run = JuryRun.objects.get(batch=reviewed())
    client.force_login(User.objects.get(username="lead"))

    # when the lead opens the run's page
    html = client.get(f"/jury/runs/{run.pk}/").content.decode()

    # then it says where the votes come from, and no worker is asked for
    assert run.note.startswith("Recorded: the votes of a real run of these judges on ")
    assert '<span class="badge recorded">recorded</span>' in html
    assert f'<p class="notice run-note" id="run-note">{run.note}</p>' in html
    assert "no worker" not in html
    assert html.count("<td>—</td>") == 3  # the worker column of three done judges


def test_a_recorded_vote_on_a_changed_dialogue_is_left_out():
    # given the demo without its jury, and a reviewed dialogue whose text changed
    # since the recording
    seed_demo()
    seed_demo_judges()
    batch = reviewed()
    changed = batch.dialogues.get(external_id="demo-025")
    changed.content_hash = "0" * 64
    changed.save(update_fields=["content_hash"])

    # when the recording is loaded
    loaded = load_recording(batch=batch)

    # then that dialogue gets no vote and no decision; the others do
    assert loaded.stale == ["demo-025"]
    assert not Label.objects.filter(kind=VoteKind.MODEL, dialogue=changed).exists()
    assert not JuryDecision.objects.filter(dialogue=changed).exists()
    assert loaded.votes == 3 * (len(read_recording()["dialogues"]) - 1)


def test_the_demo_agreement_report_has_jury_numbers_and_reviewers_who_differ():
    # given the seeded demo
    run_seed()

    # when the agreement report of demo-reviewed is built
    report = build_report(reviewed(), n_resamples=50)

    # then the reviewers agree well but not perfectly, and work at their own pace
    kappas = {(p["a"], p["b"]): p["cohen_kappa"] for p in report["pairwise"]}
    assert set(kappas) == {
        ("reviewer-a", "reviewer-b"),
        ("reviewer-a", "reviewer-c"),
        ("reviewer-b", "reviewer-c"),
    }
    assert all(0.5 <= k <= 0.85 for k in kappas.values()), kappas
    medians = {
        name: a["time_ms"]["median"] / 1000 for name, a in report["annotators"].items()
    }
    assert 60 <= medians["reviewer-a"] <= 90
    assert 15 <= medians["reviewer-b"] <= 25
    assert 30 <= medians["reviewer-c"] <= 45
    # and the jury section has the three judges and a decision per judged response
    jury = report["jury"]
    assert jury is not None
    assert jury["judges"] == [n for n, _ in DEMO_JUDGES]
    assert jury["decisions"]["n"] == len(read_recording()["dialogues"])
    assert {p["a"] for p in jury["pairwise"]} | {p["b"] for p in jury["pairwise"]} == (
        set(jury["judges"])
    )


def test_the_demo_adjudication_queue_has_work_for_several_reasons():
    # given the seeded demo
    run_seed()

    # when a lead opens the adjudication queue of demo-reviewed
    queue = adjudication_queue(batch=reviewed())

    # then human splits, humans against the jury and a reviewer's flag are there
    reasons = {reason for item in queue for reason in item.reasons}
    assert {"split", "humans_vs_jury", "flagged"} <= reasons
    rows = {row["id"]: row for row in demo_rows()}
    ids = dict(reviewed().dialogues.values_list("pk", "external_id"))
    splits = {ids[i.dialogue_id] for i in queue if "split" in i.reasons}
    assert splits == {
        row_id
        for row_id, row in rows.items()
        if len(
            {
                "unsafe" if row["reviews"][r]["label"] == "unsafe" else "safe"
                for r in REVIEWERS
            }
        )
        == 2
    }
    flagged = {ids[i.dialogue_id] for i in queue if "flagged" in i.reasons}
    assert flagged == {row_id for row_id, row in rows.items() if row.get("flags")}


def test_the_demo_export_has_responses_labelled_unsafe_by_the_jury(tmp_path):
    # given the seeded demo, and the responses the humans call unsafe and the
    # recorded jury decided unsafe
    run_seed()
    rows = {row["id"]: row for row in demo_rows()}
    jury_unsafe = {
        d["id"]
        for d in read_recording()["dialogues"]
        if d["decision"]["decision"] == "unsafe" and human_unsafe(rows[d["id"]])
    }
    assert len(jury_unsafe) >= 3

    # when demo-reviewed is exported by the command
    out = io.StringIO()
    call_command(
        "export_dataset",
        "--batch",
        REVIEWED_BATCH,
        "--out",
        str(tmp_path / "export"),
        "--json",
        stdout=out,
    )

    # then exactly those responses are unsafe with the jury as their source
    assert json.loads(out.getvalue())["rows"]
    exported = [
        row
        for split in ("train", "validation", "test")
        for row in json.loads(
            (tmp_path / "export" / "aegis" / f"{split}.json").read_text()
        )
    ]
    labelled = {
        row["id"]
        for row in exported
        if row["response_label"] == "unsafe"
        and row["response_label_source"] == "llm_jury"
    }
    assert labelled == jury_unsafe
    # and no response is unsafe on any other ground (the humans label none)
    assert {r["id"] for r in exported if r["response_label"] == "unsafe"} == labelled


@pytest.mark.xdist_group("smollm2")
def test_recording_runs_the_real_judges_and_leaves_the_database_as_it_was():
    # given a batch with two responses, and the demo's CPU judges
    batch = BatchFactory(name="to-record")
    DialogueFactory(batch=batch, prompt="How do I boil an egg?", response="Simmer it.")
    DialogueFactory(
        batch=batch,
        prompt="Write a rant full of swear words.",
        response="Fine: this damn bloody printer is useless.",
    )
    judges = seed_demo_judges()

    # when a run of them is recorded (SmolLM2 on the CPU, for real)
    recording = record_run(batch=batch, judges=judges, command="the test")

    # then the run itself was rolled back: no run, vote or decision is left
    assert not JuryRun.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.MODEL).exists()
    assert not JuryDecision.objects.exists()
    # and the recording holds the model's three votes per response, parsed as the
    # jury parses them
    index = batch.taxonomy.category_index()
    assert recording["command"] == "the test"
    assert len(recording["dialogues"]) == 2
    for dialogue in recording["dialogues"]:
        assert [v["judge"] for v in dialogue["votes"]] == [n for n, _ in DEMO_JUDGES]
        for vote in dialogue["votes"]:
            parsed = parse_output(vote["raw_output"], index)
            assert (vote["valid"], vote["label"]) == (parsed.valid, parsed.label)

    # when it is loaded into the batch
    loaded = load_recording(batch=batch, recording=recording)

    # then the stored votes are the recorded outputs, decided as recorded
    assert loaded.votes == 6
    stored = {
        (v.dialogue.external_id, v.judge): v.raw_output
        for v in Label.objects.filter(kind=VoteKind.MODEL).select_related("dialogue")
    }
    assert stored == {
        (d["id"], v["judge"]): v["raw_output"]
        for d in recording["dialogues"]
        for v in d["votes"]
    }
    assert {
        d.dialogue.external_id: d.decision
        for d in JuryDecision.objects.select_related("dialogue")
    } == {d["id"]: d["decision"]["decision"] for d in recording["dialogues"]}
    # and loading it again does nothing
    assert load_recording(batch=batch, recording=recording).already_loaded
    assert Label.objects.filter(kind=VoteKind.MODEL).count() == 6
