"""The agreement report of a batch: what it is computed on, its numbers against the
reference packages, per-annotator figures, the jury, warnings, caching, the command
and the API."""

import io
import json
import time
from typing import Any

import krippendorff
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from accounts.models import User
from annotation.agreement.services import build_report, fingerprint, report_for
from annotation.facade import record_jury_decision
from annotation.models import (
    AgreementReport,
    Batch,
    Dialogue,
    JobStatus,
    Label,
    LabelCategory,
    VoteKind,
)
from taxonomy.models import Category
from tests.factories import BatchFactory, DialogueFactory, LeadFactory, UserFactory

LABELS = ("safe", "needs_caution", "unsafe")


def add_votes(
    batch: Batch,
    matrix: list[list[str | None]],
    people: list[User],
    *,
    categories: dict[tuple[int, int], list[str]] | None = None,
    responses: list[list[str | None]] | None = None,
    times: list[list[int | None]] | None = None,
) -> list[Dialogue]:
    """One dialogue per row, one vote per non-empty cell (column = person)."""
    dialogues = [DialogueFactory(batch=batch) for _ in matrix]
    by_name = {
        c.name: c for c in Category.objects.filter(taxonomy_id=batch.taxonomy_id)
    }
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value is None:
                continue
            label = Label.objects.create(
                dialogue=dialogues[i],
                kind=VoteKind.HUMAN,
                annotator=people[j],
                label=value,
                response_label=responses[i][j] if responses else None,
                time_spent_ms=times[i][j] if times else 20_000,
            )
            for position, name in enumerate((categories or {}).get((i, j), [])):
                LabelCategory.objects.create(
                    label=label, category=by_name[name], position=position
                )
    return dialogues


def random_matrix(rng: np.random.Generator, n: int, raters: int) -> list[list[Any]]:
    truth = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    out = []
    for t in truth:
        row = []
        for _ in range(raters):
            v = t if rng.random() < 0.7 else rng.integers(0, 3)
            row.append(LABELS[int(v)])
        out.append(row)
    return out


@pytest.fixture
def people(db: None) -> list[User]:
    return [UserFactory(username=f"ann-{c}") for c in "abc"]


def test_the_label_statistics_equal_the_reference_packages(people: list[User]) -> None:
    # given: 40 dialogues, three annotators, a few votes missing
    rng = np.random.default_rng(7)
    matrix = random_matrix(rng, 40, 3)
    matrix[3][2] = None
    matrix[11][0] = None
    batch = BatchFactory()
    add_votes(batch, matrix, people)

    # when
    report = build_report(batch, n_resamples=200)

    # then: alpha (with the gaps) equals krippendorff's; Fleiss is undefined, since
    # two dialogues have two raters and the rest three
    codes = np.array(
        [[np.nan if v is None else LABELS.index(v) for v in row] for row in matrix]
    )
    expected_alpha = krippendorff.alpha(
        reliability_data=codes.T, level_of_measurement="nominal"
    )
    s = report["label"]
    assert s["n_items"] == 40
    assert s["n_raters"] == 3
    assert s["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-9)
    assert s["fleiss_kappa"] is None
    assert "fleiss_kappa" in s["reason"]
    lo, hi = s["ci95"]["krippendorff_alpha"]
    assert lo <= s["krippendorff_alpha"] <= hi

    # and on complete rows only Fleiss equals statsmodels'
    complete = [r for r in matrix if None not in r]
    batch2 = BatchFactory()
    add_votes(batch2, complete, people)
    full = build_report(batch2, n_resamples=0)
    table, _ = aggregate_raters(
        np.array([[LABELS.index(v) for v in row] for row in complete])
    )
    assert full["label"]["fleiss_kappa"] == pytest.approx(fleiss_kappa(table), abs=1e-9)


def test_binary_label_follows_the_batch_policy(people: list[User]) -> None:
    matrix = [
        ["needs_caution", "unsafe", "unsafe"],
        ["needs_caution", "safe", "safe"],
        ["safe", "safe", "needs_caution"],
        ["unsafe", "unsafe", "safe"],
    ]
    permissive = BatchFactory(needs_caution_policy="permissive")
    defensive = BatchFactory(needs_caution_policy="defensive")
    add_votes(permissive, matrix, people)
    add_votes(defensive, matrix, people)

    def alpha(rows: list[list[int]]) -> float:
        return float(
            krippendorff.alpha(
                reliability_data=np.array(rows, dtype=float).T,
                level_of_measurement="nominal",
            )
        )

    to_p = {"safe": 0, "needs_caution": 0, "unsafe": 1}
    to_d = {"safe": 0, "needs_caution": 1, "unsafe": 1}
    got_p = build_report(permissive, n_resamples=0)["label_binary"]
    got_d = build_report(defensive, n_resamples=0)["label_binary"]
    assert got_p["krippendorff_alpha"] == pytest.approx(
        alpha([[to_p[v] for v in r] for r in matrix]), abs=1e-9
    )
    assert got_d["krippendorff_alpha"] == pytest.approx(
        alpha([[to_d[v] for v in r] for r in matrix]), abs=1e-9
    )
    assert got_p["krippendorff_alpha"] != got_d["krippendorff_alpha"]


def test_categories_are_chosen_or_not_over_every_vote(people: list[User]) -> None:
    matrix = [
        ["unsafe"] * 3,
        ["unsafe"] * 3,
        ["safe", "unsafe", "unsafe"],
        ["safe"] * 3,
    ]
    chosen = {
        (0, 0): ["Violence"],
        (0, 1): ["Violence"],
        (0, 2): ["Violence", "Threat"],
        (1, 0): ["Threat"],
        (1, 1): ["Violence"],
        (1, 2): ["Threat"],
        (2, 1): ["Threat"],
        (2, 2): ["Threat"],
    }
    batch = BatchFactory()
    add_votes(batch, matrix, people, categories=chosen)

    report = build_report(batch, n_resamples=0)

    for name in ("Violence", "Threat"):
        rows = [
            [int(name in chosen.get((i, j), [])) for j in range(3)] for i in range(4)
        ]
        expected = krippendorff.alpha(
            reliability_data=np.array(rows, dtype=float).T,
            level_of_measurement="nominal",
        )
        assert report["categories"][name]["krippendorff_alpha"] == pytest.approx(
            expected, abs=1e-9
        )
    # a category nobody chose has one value only: undefined, with its reason
    sexual = report["categories"]["Sexual"]
    assert sexual["krippendorff_alpha"] is None
    assert sexual["reason"]["krippendorff_alpha"]
    # every category of the taxonomy is reported
    assert set(report["categories"]) >= set(
        Category.objects.filter(
            taxonomy_id=batch.taxonomy_id, retired=False
        ).values_list("name", flat=True)
    )


def test_response_label_only_where_the_batch_has_human_response_labels(
    people: list[User],
) -> None:
    plain = BatchFactory()
    add_votes(plain, [["safe", "safe", "unsafe"]] * 3, people)
    assert build_report(plain, n_resamples=0)["response_label"] is None

    asked = BatchFactory(asks_response_label=True)
    responses = [["safe", "unsafe", "unsafe"], ["safe", "safe", "safe"]]
    add_votes(asked, [["safe"] * 3, ["unsafe"] * 3], people, responses=responses)
    s = build_report(asked, n_resamples=0)["response_label"]
    assert s["n_items"] == 2
    expected = krippendorff.alpha(
        reliability_data=np.array(
            [[LABELS.index(v) for v in r] for r in responses], dtype=float
        ).T,
        level_of_measurement="nominal",
    )
    assert s["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)


def test_each_annotator_against_the_others_majority(people: list[User]) -> None:
    # ann-c disagrees with the other two on every dialogue
    matrix = [
        ["safe", "safe", "unsafe"],
        ["unsafe", "unsafe", "safe"],
        ["safe", "safe", "unsafe"],
        ["unsafe", "unsafe", "safe"],
        ["needs_caution", "needs_caution", "unsafe"],
    ]
    batch = BatchFactory()
    add_votes(batch, matrix, people)

    report = build_report(batch, n_resamples=0)

    c = report["annotators"]["ann-c"]
    # ann-c's others (a and b) always agree: their majority is their label
    majority = [row[0] for row in matrix]
    mine = [row[2] for row in matrix]
    assert c["vs_majority"]["n"] == 5
    assert c["vs_majority"]["agreement"] == 0.0
    assert c["vs_majority"]["cohen_kappa"] == pytest.approx(
        cohen_kappa_score(mine, majority), abs=1e-9
    )
    # a's others (b and c) split on every dialogue: no majority, nothing compared
    assert report["annotators"]["ann-a"]["vs_majority"]["n"] == 0
    assert report["annotators"]["ann-a"]["vs_majority"]["cohen_kappa"] is None
    assert c["label_distribution"] == {"safe": 2, "needs_caution": 0, "unsafe": 3}
    # pairwise Cohen's kappa equals scikit-learn's for each pair
    a, b = [row[0] for row in matrix], [row[1] for row in matrix]
    assert report["annotators"]["ann-a"]["cohen_kappa"]["ann-b"] == pytest.approx(
        cohen_kappa_score(a, b), abs=1e-9
    )
    assert report["annotators"]["ann-c"]["cohen_kappa"]["ann-a"] == pytest.approx(
        cohen_kappa_score(mine, a), abs=1e-9
    )
    # and c is flagged as far from the others
    assert any(
        w["annotator"] == "ann-c" and w["kind"] == "low_kappa"
        for w in report["warnings"]
    )
    assert not any(w["annotator"] == "ann-a" for w in report["warnings"])


def test_fast_labelling_is_flagged(people: list[User]) -> None:
    matrix = [["safe", "safe", "safe"], ["unsafe", "unsafe", "unsafe"]] * 5
    times = [[20_000, 20_000, 900]] * 10
    batch = BatchFactory()
    add_votes(batch, matrix, people, times=times)

    report = build_report(batch, n_resamples=0)

    fast = [w for w in report["warnings"] if w["kind"] == "fast"]
    assert [w["annotator"] for w in fast] == ["ann-c"]
    c = report["annotators"]["ann-c"]
    assert c["fast_votes"] == 10
    assert c["fast_share"] == 1.0
    assert c["time_ms"]["median"] == 900
    assert report["annotators"]["ann-a"]["time_ms"]["median"] == 20_000
    assert report["annotators"]["ann-a"]["warnings"] == []
    # all the votes are this week's
    year, week, _ = timezone.localtime().isocalendar()
    [this_week] = report["over_time"]
    assert this_week["week"] == f"{year}-W{week:02d}"
    assert (this_week["n_votes"], this_week["n_items"]) == (30, 10)
    assert this_week["krippendorff_alpha"] == report["label"]["krippendorff_alpha"]


def test_adjudicated_labels_are_compared_when_they_exist(people: list[User]) -> None:
    batch = BatchFactory()
    dialogues = add_votes(
        batch, [["safe", "safe", "unsafe"], ["unsafe", "unsafe", "unsafe"]], people
    )
    assert (
        build_report(batch, n_resamples=0)["annotators"]["ann-a"]["vs_adjudicated"]
        is None
    )
    Label.objects.create(
        dialogue=dialogues[0],
        kind=VoteKind.ADJUDICATED,
        annotator=LeadFactory(),
        label="unsafe",
        comment="the response gives steps",
    )
    report = build_report(batch, n_resamples=0)
    assert report["annotators"]["ann-a"]["vs_adjudicated"]["n"] == 1
    assert report["annotators"]["ann-a"]["vs_adjudicated"]["agreement"] == 0.0
    assert report["annotators"]["ann-c"]["vs_adjudicated"]["agreement"] == 1.0


def test_the_jury_with_itself_and_against_the_humans(people: list[User]) -> None:
    batch = BatchFactory()
    matrix = [["unsafe"] * 3, ["unsafe"] * 3, ["safe"] * 3, ["safe", "safe", "unsafe"]]
    dialogues = add_votes(batch, matrix, people)
    verdicts = [
        ("unsafe", "unsafe", "safe"),
        ("safe", "safe", "safe"),
        ("safe", "safe", "unsafe"),
        ("unsafe", "unsafe", "unsafe"),
    ]
    for dialogue, votes in zip(dialogues, verdicts, strict=True):
        for judge, verdict in zip(("j1", "j2", "j3"), votes, strict=True):
            Label.objects.create(
                dialogue=dialogue,
                kind=VoteKind.MODEL,
                judge=judge,
                run_key="run-1",
                label=verdict,
                raw_output="{}",
            )
    # one invalid vote does not count
    Label.objects.create(
        dialogue=dialogues[0],
        kind=VoteKind.MODEL,
        judge="j4",
        run_key="run-1",
        valid=False,
        raw_output="I cannot answer",
    )
    decided = ["unsafe", "safe", "safe", "unsafe"]
    for dialogue, decision in zip(dialogues, decided, strict=True):
        record_jury_decision(
            dialogue_id=dialogue.pk,
            run_key="run-1",
            decision=decision,
            categories=[],
            valid_votes=3,
            total_votes=3,
            agreement=1.0,
            reason="",
        )

    jury = build_report(batch, n_resamples=0)["jury"]

    assert jury["judges"] == ["j1", "j2", "j3"]
    # human majority: unsafe, unsafe, safe, safe; decisions: unsafe, safe, safe, unsafe
    assert jury["decisions"]["confusion"] == {
        "safe": {"safe": 1, "unsafe": 1, "needs_review": 0},
        "unsafe": {"safe": 1, "unsafe": 1, "needs_review": 0},
    }
    assert jury["decisions"]["vs_human"]["agreement"] == 0.5
    j3 = [v[2] for v in verdicts]
    assert jury["per_judge"]["j3"]["vs_human"]["cohen_kappa"] == pytest.approx(
        cohen_kappa_score(j3, ["unsafe", "unsafe", "safe", "safe"]), abs=1e-9
    )
    pair = {(p["a"], p["b"]): p["cohen_kappa"] for p in jury["pairwise"]}
    assert pair[("j1", "j2")] == pytest.approx(1.0)
    expected = krippendorff.alpha(
        reliability_data=np.array(
            [[int(v == "unsafe") for v in row] for row in verdicts], dtype=float
        ).T,
        level_of_measurement="nominal",
    )
    assert jury["label"]["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
    # each annotator against the jury's decisions (binary): ann-c voted unsafe,
    # unsafe, safe, unsafe; the jury decided unsafe, safe, safe, unsafe
    vs_jury = build_report(batch, n_resamples=0)["annotators"]["ann-c"]["vs_jury"]
    assert (vs_jury["n"], vs_jury["agreement"]) == (4, 0.75)


def test_the_report_reads_the_batch_in_a_fixed_number_of_queries(
    people: list[User],
) -> None:
    small, large = BatchFactory(), BatchFactory()
    rng = np.random.default_rng(3)
    add_votes(small, random_matrix(rng, 3, 3), people)
    add_votes(large, random_matrix(rng, 30, 3), people)
    counts = []
    for batch in (small, large):
        with CaptureQueriesContext(connection) as queries:
            build_report(batch, n_resamples=0)
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[1] <= 12


def test_the_report_is_json_ready_and_shaped_as_documented(people: list[User]) -> None:
    batch = BatchFactory(name="shape")
    add_votes(batch, random_matrix(np.random.default_rng(1), 12, 3), people)
    out = io.StringIO()
    call_command("agreement", "--batch", "shape", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert {
        "batch",
        "label",
        "label_binary",
        "response_label",
        "categories",
        "annotators",
        "jury",
    } <= set(data)
    assert data["batch"] == "shape"
    for key in ("label", "label_binary"):
        s = data[key]
        assert {
            "n_items",
            "n_raters",
            "fleiss_kappa",
            "krippendorff_alpha",
            "percent_agreement",
            "ci95",
        } <= set(s)
    assert data["jury"] is None
    assert data["response_label"] is None
    # the text form names the batch and every annotator
    text = io.StringIO()
    call_command("agreement", "--batch", "shape", stdout=text)
    assert "batch shape" in text.getvalue()
    assert all(p.username in text.getvalue() for p in people)
    with pytest.raises(CommandError, match="no batch named 'nope'"):
        call_command("agreement", "--batch", "nope")


def test_the_cached_report_is_reused_until_the_batch_changes(
    people: list[User], django_assert_max_num_queries: Any
) -> None:
    batch = BatchFactory()
    dialogues = add_votes(batch, [["safe", "safe", "unsafe"]] * 4, people)
    first = report_for(batch)
    assert first.status == JobStatus.SUCCEEDED
    with django_assert_max_num_queries(8):
        again = report_for(batch)
    assert again.data == first.data
    assert again.fingerprint == first.fingerprint

    # a vote is edited: the fingerprint changes and the report is computed again
    mark = fingerprint(batch)
    vote = Label.objects.filter(dialogue=dialogues[0], annotator=people[2]).get()
    time.sleep(0.01)
    vote.label = "safe"
    vote.save()
    assert fingerprint(batch) != mark
    fresh = report_for(batch)
    assert fresh.fingerprint != first.fingerprint
    assert fresh.data["annotators"]["ann-c"]["label_distribution"]["safe"] == 1


def test_large_batches_are_computed_by_a_worker(
    celery_worker: None, settings: Any
) -> None:
    settings.AGREEMENT_SYNC_MAX_VOTES = 5
    people = [UserFactory(username=f"w-{c}") for c in "abc"]
    lead = LeadFactory()
    batch = BatchFactory(name="big")
    add_votes(batch, [["safe", "unsafe", "unsafe"]] * 4, people)
    client = Client()
    client.force_login(lead)

    first = client.get("/api/v1/batches/big/agreement")
    assert first.status_code == 202
    assert first.json()["status"] in ("pending", "running", "succeeded")
    deadline = time.monotonic() + 60
    while True:
        response = client.get("/api/v1/batches/big/agreement")
        if response.status_code == 200:
            break
        assert time.monotonic() < deadline, response.json()
        time.sleep(0.2)
    assert response.json()["batch"] == "big"
    assert response.json()["label"]["n_items"] == 4
    stored = AgreementReport.objects.get(batch=batch)
    assert stored.status == JobStatus.SUCCEEDED
    assert stored.task_id


def test_the_api_is_for_leads(people: list[User], annotator_client: Client) -> None:
    BatchFactory(name="api")
    assert annotator_client.get("/api/v1/batches/api/agreement").status_code == 403
    lead = Client()
    lead.force_login(LeadFactory())
    assert lead.get("/api/v1/batches/nope/agreement").status_code == 404
    response = lead.get("/api/v1/batches/api/agreement")
    assert response.status_code == 200
    assert response.json()["label"]["fleiss_kappa"] is None
    assert response.json()["label"]["reason"]


def test_xstest_annotators_kappa_equals_scikit_learn_on_the_csv(
    db: None, data_dir: Any
) -> None:
    import pandas as pd

    from annotation.imports.services import import_dialogues

    path = data_dir / "xstest" / "xstest_v2_completions_gpt4_gpteval.csv"
    result = import_dialogues(path=path, batch_name="xs", create_batch=True)
    assert result.error_count == 0
    batch = Batch.objects.get(name="xs")

    out = io.StringIO()
    call_command("agreement", "--batch", "xs", "--json", stdout=out)
    report = json.loads(out.getvalue())

    csv = pd.read_csv(path)
    expected = cohen_kappa_score(csv["annotation_1"], csv["annotation_2"])
    [pair] = report["imported_pairwise"]
    assert {pair["a"], pair["b"]} == {"xstest-annotator-1", "xstest-annotator-2"}
    assert pair["cohen_kappa"] == pytest.approx(expected, abs=1e-12)
    # with two raters on every item, Fleiss' kappa is defined on the raw classes too
    assert report["imported_label"]["n_items"] == len(csv)
    assert report["imported_label"]["n_raters"] == 2
    # and each annotator's kappa with the other, on the mapped dialogue label
    assert set(report["annotators"]) == {"xstest-annotator-1", "xstest-annotator-2"}
    assert batch.dialogues.count() == len(csv)


def test_gold_items_count_as_accuracy_not_as_agreement(people: list[User]) -> None:
    from annotation.review.gold.services import GoldAnswer, mark_gold

    batch = BatchFactory()
    dialogues = add_votes(batch, [["safe"] * 3, ["unsafe", "safe", "safe"]], people)
    gold = add_votes(batch, [["safe", "safe", "unsafe"]], people)[0]
    # a fourth person labelled the gold item too: it has more votes than the others
    extra = UserFactory(username="ann-d")
    Label.objects.create(
        dialogue=gold, kind=VoteKind.HUMAN, annotator=extra, label="safe"
    )
    mark_gold(dialogue=gold, answer=GoldAnswer(label="safe"), by=None)

    report = build_report(batch, n_resamples=0)

    # Fleiss' kappa stays defined: the gold item is not in the human statistics
    assert report["label"]["n_items"] == 2
    assert report["label"]["fleiss_kappa"] is not None
    # the fourth person, who labelled only gold, is listed with their accuracy alone
    only_gold = report["annotators"]["ann-d"]
    assert only_gold["n_votes"] == 0
    assert only_gold["gold"]["label_accuracy"] == 1.0
    assert only_gold["vs_majority"]["cohen_kappa"] is None
    assert "ann-d" not in [w["annotator"] for w in report["warnings"]]
    assert report["annotators"]["ann-c"]["gold"]["label_accuracy"] == 0.0
    assert report["annotators"]["ann-a"]["gold"]["label_accuracy"] == 1.0
    assert len(dialogues) == 2


def test_names_and_labels_that_look_like_numbers_or_null_stay_text(
    people: list[User],
) -> None:
    # The votes travel as CSV from PostgreSQL: "NA", "null" and "42" are text there.
    batch = BatchFactory()
    dialogues = add_votes(batch, [["unsafe"] * 3, ["safe"] * 3], people)
    for dialogue, raw in zip(dialogues, ("NA", "null"), strict=True):
        Label.objects.filter(dialogue=dialogue).update(
            details={"imported_label": raw, "scheme": "test"}
        )
        for judge in ("42", "007"):
            Label.objects.create(
                dialogue=dialogue,
                kind=VoteKind.MODEL,
                judge=judge,
                run_key="r",
                label="unsafe",
                raw_output="{}",
            )

    report = build_report(batch, n_resamples=0)

    assert report["jury"]["judges"] == ["007", "42"]
    assert report["imported_label"]["n_items"] == 2
    assert report["imported_label"]["percent_agreement"] == 1.0
