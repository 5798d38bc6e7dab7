"""Training-data exports (annotation.export.services): files, splits, labels, determinism."""

import csv
import hashlib
import json
import time
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from annotation.adjudication.services import adjudicate
from annotation.export.services import (
    ExportParams,
    ExportProblem,
    run_snapshot,
    start_export,
    write_export,
)
from annotation.final_labels.services import derive_batch
from annotation.models import (
    Batch,
    Dialogue,
    ExportSnapshot,
    JobStatus,
    Label,
    LabelCategory,
    OtherMapping,
    VoteKind,
)
from annotation.rules.layouts import AEGIS_COLUMNS
from taxonomy.models import Category, Taxonomy
from tests.annotation.export.data import labelled_batch
from tests.factories import DialogueFactory, LabelFactory, LeadFactory, UserFactory

SPLITS = ("train", "validation", "test")
pytestmark = pytest.mark.django_db


def _rows(out: Path) -> dict[str, list[dict]]:
    return {
        s: json.loads((out / "aegis" / f"{s}.json").read_text(encoding="utf-8"))
        for s in SPLITS
    }


def _hashes(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def _vote(dialogue, annotator, label, categories=(), other_text=""):
    vote = LabelFactory(
        dialogue=dialogue, annotator=annotator, label=label, other_text=other_text
    )
    taxonomy = dialogue.batch.taxonomy
    for position, name in enumerate(categories):
        LabelCategory.objects.create(
            label=vote,
            category=Category.objects.get(taxonomy=taxonomy, name=name),
            position=position,
        )
    return vote


def _three_votes(dialogue, labels, categories=(), other_text=""):
    people = [UserFactory(username=f"voter-{k}") for k in range(len(labels))]
    for person, label in zip(people, labels, strict=True):
        _vote(
            dialogue,
            person,
            label,
            categories if label != "safe" else (),
            other_text if label != "safe" else "",
        )


def test_export_writes_every_file_in_the_aegis_layout(tmp_path):
    # given a small labelled batch
    made = labelled_batch("small", 60, refusal_every=4)
    # when exported
    result = write_export(ExportParams(batches=("small",), seed=1), tmp_path / "out")
    out = tmp_path / "out"
    # then every file is there
    names = set(_hashes(out))
    assert names == {
        *(f"aegis/{s}.json" for s in SPLITS),
        *(f"parquet/{s}.parquet" for s in SPLITS),
        *(f"csv/{s}.csv" for s in SPLITS),
        *(f"sft/{s}.jsonl" for s in SPLITS),
        "README.md",
        "manifest.json",
    }
    # the JSON rows have exactly the nine columns, in order, and every dialogue
    rows = _rows(out)
    everything = [r for s in SPLITS for r in rows[s]]
    assert all(list(r) == list(AEGIS_COLUMNS) for r in everything)
    assert len(everything) == 60 + made.refusals
    # the labels are the votes' majority, the sources as Aegis 2.0 spells them
    originals = [
        r
        for r in everything
        if r["response_label_source"] != "refusal_data_augmentation"
    ]
    assert {r["id"]: r["prompt_label"] for r in originals} == made.truth
    assert {r["prompt_label_source"] for r in everything} == {"human"}
    assert {
        (r["response"] is None, r["response_label"], r["response_label_source"])
        for r in originals
    } == {(True, None, None), (False, "safe", "human")}
    # the manifest holds the parameters, the counts and every other file's hash
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["seed"] == 1
    assert manifest["parameters"]["ratios"] == [0.8, 0.1, 0.1]
    assert manifest["taxonomy_versions"] == [str(Taxonomy.objects.default())]
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == {
        k: v for k, v in _hashes(out).items() if k != "manifest.json"
    }
    assert {s: manifest["counts"][s]["rows"] for s in SPLITS} == {
        s: len(rows[s]) for s in SPLITS
    }
    assert result.counts == manifest["counts"]
    # and the card gives the counts per split and the source's license line
    card = (out / "README.md").read_text()
    for s in SPLITS:
        c = manifest["counts"][s]
        assert f"| {s} | {c['rows']} | {c['prompts']} |" in card
    assert "| generated |" in card


def test_no_prompt_is_in_two_splits_and_refusals_never_in_test(tmp_path):
    # given 1,500 dialogues where some prompts have two responses and refusals
    labelled_batch(
        "grouped", 1500, response_every=0, refusal_every=2, shared_prompt_every=7
    )
    # when exported
    write_export(ExportParams(batches=("grouped",), seed=5), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    # then every prompt (and every id) is in exactly one split
    split_of_prompt: dict[str, set[str]] = {}
    for s in SPLITS:
        for r in rows[s]:
            split_of_prompt.setdefault(r["prompt"], set()).add(s)
    assert all(len(found) == 1 for found in split_of_prompt.values())
    repeated = Counter(r["prompt"] for s in SPLITS for r in rows[s])
    assert sum(1 for n in repeated.values() if n > 1) > 100  # the case is exercised
    # refusals sit with their prompt, never in test
    refusals = {
        s: [
            r
            for r in rows[s]
            if r["response_label_source"] == "refusal_data_augmentation"
        ]
        for s in SPLITS
    }
    assert refusals["test"] == []
    assert len(refusals["train"]) > 100
    assert len(refusals["validation"]) > 10
    assert len(rows["test"]) > 100


def test_label_proportions_per_split_stay_within_two_points(tmp_path):
    # given a batch of 3,000 labelled dialogues
    labelled_batch("strata", 3000, seed=11)
    # when exported
    write_export(ExportParams(batches=("strata",), seed=3), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    everything = [r for s in SPLITS for r in rows[s]]

    def share(rs, key, value):
        return sum(r[key] == value for r in rs) / len(rs)

    def primary(r):
        return (r["violated_categories"] or "").split(", ")[0]

    # then each split's unsafe share, response share and primary-category shares are
    # within 2 points of the whole
    for s in SPLITS:
        assert (
            abs(len(rows[s]) / len(everything) - (0.8, 0.1, 0.1)[SPLITS.index(s)])
            < 0.01
        )
        for key, value in (("prompt_label", "unsafe"), ("response_label", "safe")):
            assert (
                abs(share(rows[s], key, value) - share(everything, key, value)) <= 0.02
            )
        for category in {primary(r) for r in everything}:
            whole = sum(primary(r) == category for r in everything) / len(everything)
            here = sum(primary(r) == category for r in rows[s]) / len(rows[s])
            assert abs(here - whole) <= 0.02, (s, category)


def test_a_second_export_is_byte_identical(tmp_path):
    # given a labelled batch exported once
    labelled_batch("twice", 400, refusal_every=5)
    params = ExportParams(batches=("twice",), seed=42)
    write_export(params, tmp_path / "one")
    # when exported again into another folder
    write_export(params, tmp_path / "two")
    # then every file but the manifest (which says when) is the same, byte for byte
    one, two = _hashes(tmp_path / "one"), _hashes(tmp_path / "two")
    del one["manifest.json"], two["manifest.json"]
    assert one == two
    m1 = json.loads((tmp_path / "one" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert m1["files"] == m2["files"]
    # and another seed gives other splits
    write_export(ExportParams(batches=("twice",), seed=43), tmp_path / "three")
    assert _rows(tmp_path / "three")["test"] != _rows(tmp_path / "one")["test"]


def test_unresolved_dialogues_are_left_out_and_counted(tmp_path):
    # given a batch with one decided dialogue, one with two votes of three, and one
    # unsafe prompt whose response the jury has not judged
    batch = Batch.objects.create(name="partial", taxonomy=Taxonomy.objects.default())
    done = DialogueFactory(batch=batch, response=None)
    _three_votes(done, ["safe", "safe", "unsafe"], ["Violence"])
    waiting = DialogueFactory(batch=batch, response=None)
    _three_votes(waiting, ["safe", "safe"])
    unjudged = DialogueFactory(batch=batch, response="Sure, here it is.")
    _three_votes(unjudged, ["unsafe", "unsafe", "unsafe"], ["Violence"])
    # when exported
    result = write_export(ExportParams(batches=("partial",)), tmp_path / "out")
    # then only the decided one is there; the other two are counted
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert [r["id"] for r in rows] == [done.external_id]
    assert result.excluded == {"unresolved": 2}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["excluded"] == {"unresolved": 2}
    assert "Left out: unresolved: 2." in (tmp_path / "out" / "README.md").read_text()


def test_the_needs_caution_policy_can_be_chosen_for_an_export(tmp_path):
    # given a permissive batch with a needs-caution majority
    batch = Batch.objects.create(name="caution", taxonomy=Taxonomy.objects.default())
    dialogue = DialogueFactory(batch=batch, response=None)
    _three_votes(dialogue, ["needs_caution", "needs_caution", "safe"], ["Violence"])
    # when exported with the batch's own policy and with the defensive one
    write_export(ExportParams(batches=("caution",)), tmp_path / "own")
    write_export(
        ExportParams(batches=("caution",), needs_caution_policy="defensive"),
        tmp_path / "defensive",
    )

    def label(out):
        return [r["prompt_label"] for rs in _rows(out).values() for r in rs]

    # then needs caution counts as safe, then as unsafe; the stored label is untouched
    assert label(tmp_path / "own") == ["safe"]
    assert label(tmp_path / "defensive") == ["unsafe"]
    dialogue.final_label.refresh_from_db()
    assert dialogue.final_label.prompt_label == "safe"
    manifest = json.loads((tmp_path / "defensive" / "manifest.json").read_text())
    assert manifest["batches"][0]["needs_caution_policy"] == "defensive"


def test_an_other_mapping_reaches_the_export_and_the_text_stays(tmp_path):
    # given unsafe votes with Other "phishing kit", mapped to Fraud/Deception
    batch = Batch.objects.create(name="other", taxonomy=Taxonomy.objects.default())
    dialogue = DialogueFactory(batch=batch, response=None)
    _three_votes(dialogue, ["unsafe", "unsafe", "unsafe"], ["Other"], "Phishing kit")
    OtherMapping.objects.create(
        taxonomy=batch.taxonomy,
        text="phishing kit",
        category=Category.objects.get(taxonomy=batch.taxonomy, name="Fraud/Deception"),
    )
    # when exported
    write_export(ExportParams(batches=("other",)), tmp_path / "out")
    # then the row names the mapped category; the votes keep Other and their text
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert [r["violated_categories"] for r in rows] == ["Fraud/Deception"]
    assert set(
        Label.objects.filter(dialogue=dialogue).values_list("other_text", flat=True)
    ) == {"Phishing kit"}


def test_adjudicated_rows_export_the_leads_labels_as_human(tmp_path):
    # given a tied dialogue a lead decided
    batch = Batch.objects.create(
        name="decided", taxonomy=Taxonomy.objects.default(), labels_required=2
    )
    dialogue = DialogueFactory(batch=batch, response=None)
    _three_votes(dialogue, ["safe", "unsafe"], ["Violence"])
    adjudicate(
        dialogue_id=dialogue.pk,
        lead=LeadFactory(),
        prompt_label="unsafe",
        response_label=None,
        categories=("Threat", "Violence"),
        confidence="high",
        reason="edge_case",
    )
    # when exported
    write_export(ExportParams(batches=("decided",)), tmp_path / "out")
    # then the row carries the lead's labels, with the source a human
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert [
        (r["prompt_label"], r["prompt_label_source"], r["violated_categories"])
        for r in rows
    ] == [("unsafe", "human", "Threat, Violence")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (
        sum(manifest["counts"][s]["provenance"].get("adjudicated", 0) for s in SPLITS)
        == 1
    )


def test_refusals_can_be_left_out(tmp_path):
    made = labelled_batch("norefusal", 80, refusal_every=2)
    assert made.refusals > 0
    result = write_export(
        ExportParams(batches=("norefusal",), include_refusals=False), tmp_path / "out"
    )
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert len(rows) == 80
    assert result.excluded == {"refusals_left_out": made.refusals}


def test_csv_cells_that_look_like_formulas_are_neutralised(tmp_path):
    # given a dialogue whose prompt and response start like spreadsheet formulas
    batch = Batch.objects.create(name="formula", taxonomy=Taxonomy.objects.default())
    dialogue = DialogueFactory(
        batch=batch, prompt='=HYPERLINK("http://evil")', response="@SUM(A1:A9)"
    )
    _three_votes(dialogue, ["safe", "safe", "safe"])
    # when exported
    write_export(ExportParams(batches=("formula",)), tmp_path / "out")
    # then the CSV holds them behind a quote; JSON and Parquet keep the text as it is
    found = []
    for s in SPLITS:
        with (tmp_path / "out" / "csv" / f"{s}.csv").open(newline="") as f:
            reader = csv.DictReader(f)
            assert reader.fieldnames == list(AEGIS_COLUMNS)
            found += list(reader)
    assert [(r["prompt"], r["response"]) for r in found] == [
        ('\'=HYPERLINK("http://evil")', "'@SUM(A1:A9)")
    ]
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert rows[0]["prompt"] == '=HYPERLINK("http://evil")'


def test_parquet_files_load_with_pandas_and_datasets(tmp_path, monkeypatch):
    # given an export
    labelled_batch("parquet", 200)
    write_export(ExportParams(batches=("parquet",)), tmp_path / "out")
    out = tmp_path / "out"
    rows = _rows(out)
    # when the Parquet files are read with pandas
    for s in SPLITS:
        frame = pd.read_parquet(out / "parquet" / f"{s}.parquet")
        # then they hold the JSON rows, column for column
        assert list(frame.columns) == list(AEGIS_COLUMNS)
        assert (
            frame.astype(object).where(frame.notna(), None).to_dict("records")
            == rows[s]
        )
    # and with datasets' Parquet loader, as a trainer would (offline: local files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    from datasets import load_dataset

    loaded = load_dataset(
        "parquet",
        data_files={s: str(out / "parquet" / f"{s}.parquet") for s in SPLITS},
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert {s: loaded[s].num_rows for s in SPLITS} == {s: len(rows[s]) for s in SPLITS}
    assert loaded["train"].column_names == list(AEGIS_COLUMNS)
    assert loaded["train"][0] == rows["train"][0]


def test_sft_files_hold_one_example_per_row(tmp_path):
    labelled_batch("sft", 50)
    write_export(ExportParams(batches=("sft",)), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    for s in SPLITS:
        lines = (tmp_path / "out" / "sft" / f"{s}.jsonl").read_text().splitlines()
        examples = [json.loads(line) for line in lines]
        assert [e["id"] for e in examples] == [r["id"] for r in rows[s]]
        for example, row in zip(examples, rows[s], strict=True):
            answer = json.loads(example["messages"][1]["content"])
            assert answer["User Safety"] == row["prompt_label"]
            assert ("Response Safety" in answer) == (row["response"] is not None)
            assert f"user: {row['prompt']}" in example["messages"][0]["content"]


def test_a_topic_following_file_is_blended_into_the_sft_files(tmp_path):
    # given a labelled batch and a CantTalkAboutThis file of 30 conversations
    labelled_batch("topics", 40)
    topic = tmp_path / "topics.jsonl"
    topic.write_text(
        "\n".join(
            json.dumps(
                {
                    "domain": "banking",
                    "scenario": f"scenario {i}",
                    "system_instruction": "Only discuss banking.",
                    "conversation": [
                        {"role": "user", "content": f"question {i}"},
                        {"role": "assistant", "content": f"answer {i}"},
                    ],
                    "distractors": [],
                }
            )
            for i in range(30)
        )
    )
    # when exported with it
    result = write_export(
        ExportParams(batches=("topics",), topic_file=str(topic)), tmp_path / "out"
    )
    # then the SFT files hold the 30 conversations after the guard examples, the
    # Aegis files do not, and the manifest counts them
    sft = [
        json.loads(line)
        for s in SPLITS
        for line in (tmp_path / "out" / "sft" / f"{s}.jsonl").read_text().splitlines()
    ]
    blended = [e for e in sft if e["messages"][0]["role"] == "system"]
    assert len(blended) == 30
    assert len(sft) == 70
    assert sum(result.counts[s]["topic_following"] for s in SPLITS) == 30
    assert sum(len(r) for r in _rows(tmp_path / "out").values()) == 40
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parameters"]["topic_file"] == "topics.jsonl"


def test_bad_parameters_are_refused_before_anything_is_written(tmp_path):
    labelled_batch("params", 5)
    bad_topic = tmp_path / "bad.jsonl"
    bad_topic.write_text('{"domain": "x"}\nnot json\n')
    cases = [
        (ExportParams(batches=("nope",)), "batches: no batch named 'nope'"),
        (ExportParams(batches=("params",), ratios=(0.5, 0.1, 0.1)), "ratios: "),
        (ExportParams(batches=()), "batches: choose at least one"),
        (
            ExportParams(batches=("params",), needs_caution_policy="lax"),
            "needs_caution_policy: 'lax'",
        ),
        (
            ExportParams(batches=("params",), topic_file=str(bad_topic)),
            "topic_file: line 2 is not valid JSON",
        ),
    ]
    for k, (params, message) in enumerate(cases):
        with pytest.raises(ExportProblem, match=message.replace("(", r"\(")):
            write_export(params, tmp_path / f"out{k}")
        assert not (tmp_path / f"out{k}").exists()
    # and a folder that already holds files is never written into
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(ExportProblem, match="exists and is not an empty folder"):
        write_export(ExportParams(batches=("params",)), full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_export_brings_final_labels_up_to_date_and_skips_it_when_nothing_changed(
    tmp_path,
):
    # given a batch derived once, then a fourth vote that turns a dialogue unsafe
    batch = Batch.objects.create(
        name="fresh", taxonomy=Taxonomy.objects.default(), labels_required=3
    )
    dialogue = DialogueFactory(batch=batch, response=None)
    _three_votes(dialogue, ["unsafe", "safe", "safe"], ["Violence"])
    derive_batch(batch)
    batch.refresh_from_db()
    for k in range(2):
        _vote(dialogue, UserFactory(username=f"late-{k}"), "unsafe", ["Violence"])
    # when exported (the queued recomputation has not run)
    write_export(ExportParams(batches=("fresh",)), tmp_path / "one")
    # then the export has the new majority
    rows = [r for rs in _rows(tmp_path / "one").values() for r in rs]
    assert [r["prompt_label"] for r in rows] == ["unsafe"]
    # and a second export with nothing changed reads the stored labels without
    # deriving again (no write to the final labels)
    with CaptureQueriesContext(connection) as captured:
        write_export(ExportParams(batches=("fresh",)), tmp_path / "two")
    sql = [q["sql"] for q in captured.captured_queries]
    assert not any(
        "annotation_finallabel" in s and s.startswith(("INSERT", "UPDATE")) for s in sql
    )
    assert not any("FOR UPDATE" in s for s in sql)


def test_export_dataset_command_prints_json(tmp_path, capsys):
    labelled_batch("cmd", 30)
    call_command(
        "export_dataset",
        "--batch",
        "cmd",
        "--out",
        str(tmp_path / "out"),
        "--seed",
        "3",
        "--ratios",
        "0.6,0.2,0.2",
        "--json",
    )
    printed = json.loads(capsys.readouterr().out)
    assert sum(printed["rows"].values()) == 30
    assert printed["files"] == 14
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parameters"]["ratios"] == [0.6, 0.2, 0.2]
    assert manifest["parameters"]["seed"] == 3
    with pytest.raises(CommandError, match="--ratios: ratios must add up to 1"):
        call_command(
            "export_dataset",
            "--batch",
            "cmd",
            "--out",
            str(tmp_path / "x"),
            "--ratios",
            "1,1,1",
        )
    with pytest.raises(CommandError, match="no batch named 'ghost'"):
        call_command("export_dataset", "--batch", "ghost", "--out", str(tmp_path / "y"))


AEGIS2_ROWS = [
    {
        "id": "a1",
        "prompt": "How do I make a weapon at home?",
        "response": None,
        "prompt_label": "unsafe",
        "response_label": None,
        "prompt_label_source": "human",
        "response_label_source": None,
        "violated_categories": "Guns and Illegal Weapons, Criminal Planning/Confessions",
        "reconstruction_id_if_redacted": None,
    },
    {
        "id": "a1",
        "prompt": "How do I make a weapon at home?",
        "response": "I can't help with making weapons, but I can share safety resources.",
        "prompt_label": "unsafe",
        "response_label": "safe",
        "prompt_label_source": "human",
        "response_label_source": "refusal_data_augmentation",
        "violated_categories": "Guns and Illegal Weapons, Criminal Planning/Confessions",
        "reconstruction_id_if_redacted": None,
    },
    {
        "id": "a2",
        "prompt": "What's a good pasta recipe?",
        "response": "Boil pasta, add <b>sauce</b> & =cheese.",
        "prompt_label": "safe",
        "response_label": "safe",
        "prompt_label_source": "human",
        "response_label_source": "human",
        "violated_categories": "",
        "reconstruction_id_if_redacted": None,
    },
    {
        "id": "a3",
        "prompt": "REDACTED",
        "response": "That is a hateful thing to say.",
        "prompt_label": "unsafe",
        "response_label": "unsafe",
        "prompt_label_source": "human",
        "response_label_source": "llm_jury",
        "violated_categories": "Hate/Identity Hate",
        "reconstruction_id_if_redacted": "src-991",
    },
    {
        "id": "a4",
        "prompt": "Tell me about my neighbour's address",
        "response": None,
        "prompt_label": "unsafe",
        "response_label": None,
        "prompt_label_source": "human",
        "response_label_source": None,
        "violated_categories": "PII/Privacy, Needs Caution",
        "reconstruction_id_if_redacted": None,
    },
    {
        "id": "a5",
        "prompt": "Is it legal to own a parrot?",
        "response": "Yes, in most places.",
        "prompt_label": "safe",
        "response_label": "safe",
        "prompt_label_source": "human",
        "response_label_source": "llm_jury",
        "violated_categories": "",
        "reconstruction_id_if_redacted": None,
    },
]


def test_an_aegis2_file_imported_and_exported_gives_back_the_same_rows(tmp_path):
    # given an Aegis 2.0 file (refusal rows reusing ids, a redacted prompt, jury
    # response labels, an empty category list)
    source = tmp_path / "aegis2.json"
    source.write_text(json.dumps(AEGIS2_ROWS), encoding="utf-8")
    call_command(
        "import_dialogues",
        str(source),
        "--format",
        "aegis2",
        "--batch",
        "roundtrip",
        "--create-batch",
    )
    # when exported
    write_export(ExportParams(batches=("roundtrip",)), tmp_path / "out")
    # then the rows and their values are the same as the file's
    exported = [r for rs in _rows(tmp_path / "out").values() for r in rs]

    def key(row):
        return json.dumps(row, sort_keys=True)

    assert sorted(exported, key=key) == sorted(AEGIS2_ROWS, key=key)


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_runs_in_a_celery_worker(tmp_path, settings, celery_worker):
    # given an admin asking for an export of a labelled batch
    settings.MEDIA_ROOT = str(tmp_path / "media")
    labelled_batch("celery", 120, refusal_every=4)
    admin = User.objects.create_user(username="boss", password=None, role="admin")
    # when the export is started (queued on commit) and the worker picks it up
    snapshot = start_export(
        params=ExportParams(batches=("celery",), seed=2), user=admin
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snapshot.refresh_from_db()
        if snapshot.finished:
            break
        time.sleep(0.2)
    # then it succeeded with its counts, its folder is read-only and its zip holds
    # the files
    assert (snapshot.status, snapshot.error) == (JobStatus.SUCCEEDED, "")
    assert snapshot.percent == 100
    assert sum(c["rows"] for c in snapshot.counts["splits"].values()) > 120
    folder = Path(settings.MEDIA_ROOT) / snapshot.directory
    assert (folder / "aegis" / "train.json").stat().st_mode & 0o222 == 0
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT) / snapshot.zip_path) as archive:
        names = archive.namelist()
        assert f"{folder.name}/aegis/train.json" in names
        manifest = json.loads(archive.read(f"{folder.name}/manifest.json"))
    assert hashlib.sha256(json.dumps(manifest, indent=2).encode()).hexdigest()  # parses
    assert (
        snapshot.manifest_sha256
        == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    )
    # and running the task again leaves the finished snapshot as it was
    again = run_snapshot(snapshot.pk)
    assert (again.status, again.directory) == (JobStatus.SUCCEEDED, snapshot.directory)


def test_only_admins_start_exports(tmp_path):
    labelled_batch("rights", 3)
    with pytest.raises(ExportProblem, match="only admins"):
        start_export(params=ExportParams(batches=("rights",)), user=LeadFactory())
    assert ExportSnapshot.objects.count() == 0


def test_a_failed_snapshot_records_why(tmp_path, settings):
    # given a recorded export whose topic file went missing before it ran
    settings.MEDIA_ROOT = str(tmp_path / "media")
    labelled_batch("gone", 3)
    topic = tmp_path / "t.jsonl"
    topic.write_text("")
    admin = User.objects.create_user(username="boss2", password=None, role="admin")
    snapshot = start_export(
        params=ExportParams(batches=("gone",), topic_file=str(topic)), user=admin
    )
    topic.unlink()
    # when it runs
    result = run_snapshot(snapshot.pk)
    # then it failed with the reason, and left no folder behind
    assert result.status == JobStatus.FAILED
    assert result.error.startswith("topic_file: no file at")
    assert not any((Path(settings.MEDIA_ROOT) / "exports").glob("export-*"))


def test_exported_categories_of_a_vote_stay_ordered_by_votes(tmp_path):
    # given two unsafe votes naming Malware first and one naming Violence
    batch = Batch.objects.create(name="order", taxonomy=Taxonomy.objects.default())
    dialogue = DialogueFactory(batch=batch, response=None)
    people = [UserFactory(username=f"o-{k}") for k in range(3)]
    _vote(dialogue, people[0], "unsafe", ["Violence", "Malware"])
    _vote(dialogue, people[1], "unsafe", ["Malware"])
    _vote(dialogue, people[2], "unsafe", ["Malware", "Threat"])
    write_export(ExportParams(batches=("order",)), tmp_path / "out")
    rows = [r for rs in _rows(tmp_path / "out").values() for r in rs]
    assert [r["violated_categories"] for r in rows] == ["Malware, Violence, Threat"]
    assert Label.objects.filter(kind=VoteKind.HUMAN).count() == 3


def test_batches_export_together_and_a_prompt_in_both_stays_in_one_split(tmp_path):
    # given two batches that share 40 prompts (another response in each)
    first = labelled_batch("left", 400, seed=1, response_every=1)
    labelled_batch("right", 0)
    right = Batch.objects.get(name="right")
    shared = list(Dialogue.objects.filter(batch=first.batch).order_by("id")[:40])
    for k, dialogue in enumerate(shared):
        twin = DialogueFactory(
            batch=right, prompt=dialogue.prompt, response=f"another answer {k}"
        )
        _three_votes(twin, ["safe", "safe", "safe"])
    # when both are exported at once
    result = write_export(
        ExportParams(batches=("right", "left"), seed=8), tmp_path / "out"
    )
    rows = _rows(tmp_path / "out")
    # then both batches' rows are there, each shared prompt in one split only
    assert sum(len(r) for r in rows.values()) == 440
    for dialogue in shared:
        splits = {s for s in SPLITS for r in rows[s] if r["prompt"] == dialogue.prompt}
        assert len(splits) == 1
        assert sum(r["prompt"] == dialogue.prompt for s in SPLITS for r in rows[s]) == 2
    assert result.manifest["parameters"]["batches"] == ["left", "right"]
    assert [b["name"] for b in result.manifest["batches"]] == ["left", "right"]


def test_an_export_that_fails_half_way_leaves_nothing_behind(tmp_path, monkeypatch):
    # given a batch, and a disk that fills up while the CSV files are written
    labelled_batch("halfway", 20)

    def full_disk(path, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("annotation.export.pipeline.writers._write_csv", full_disk)
    # when exported
    with pytest.raises(OSError, match="No space left"):
        write_export(ExportParams(batches=("halfway",)), tmp_path / "out")
    # then neither the folder nor its hidden work folder is left
    assert list(tmp_path.iterdir()) == []
