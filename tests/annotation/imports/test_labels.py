"""Importing human votes in long format (one row per dialogue and annotator)."""

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from annotation.imports.services import ImportFailed, ImportResult, import_labels
from annotation.models import Batch, Dialogue, Label, LabelCategory, VoteKind
from tests.factories import BatchFactory, DialogueFactory, LabelFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = [
    "dialogue_id",
    "annotator",
    "label",
    "response_label",
    "categories",
    "other_text",
    "comment",
]


@pytest.fixture
def batch() -> Batch:
    """A batch with two answered dialogues (d1, d2) and one bare prompt (d3)."""
    batch = BatchFactory(name="votes")
    DialogueFactory(batch=batch, external_id="d1")
    DialogueFactory(batch=batch, external_id="d2")
    DialogueFactory(batch=batch, external_id="d3", response=None)
    return batch


@pytest.fixture
def raters(db: None) -> dict[str, User]:
    return {name: UserFactory(username=name) for name in ("anna", "ben")}


def _write_csv(path: Path, rows: list[list[Any]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _state() -> tuple[int, int, int]:
    return (Label.objects.count(), LabelCategory.objects.count(), User.objects.count())


def _import(path: Path, **kw: Any) -> ImportResult:
    return import_labels(path=path, batch_name="votes", **kw)


def _texts(result: ImportResult) -> list[str]:
    return [str(e) for e in result.errors]


def _vote(external_id: str, username: str) -> Label:
    return Label.objects.get(
        dialogue__external_id=external_id, annotator__username=username
    )


def _cat_names(label: Label) -> list[str]:
    return [
        lc.category.name
        for lc in label.label_categories.select_related("category").order_by("position")
    ]


# --- a good file ------------------------------------------------------------------


def test_long_format_csv_adds_one_vote_per_row(tmp_path, batch, raters):
    # given votes with categories by name, by code and "S1: name", in mixed case
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "unsafe", "safe", "S1, Threat", "", "looks bad"],
            ["d1", "ben", "Unsafe", "", "s3: criminal planning/confessions", "", ""],
            ["d2", "anna", "safe", "safe", "", "", ""],
            ["d2", "ben", "needs caution", "", "Other", "gaslighting", ""],
            ["d3", "anna", "unsafe", "", "Sexual Minor,Guns/Illegal Weapons", "", ""],
        ],
    )

    # when imported
    result = _import(path)

    # then five human votes are written as given
    assert (result.imported, result.labels, result.skipped_duplicates) == (5, 5, 0)
    assert (result.error_count, result.written) == (0, True)
    assert Label.objects.filter(kind=VoteKind.HUMAN).count() == 5

    anna_d1 = _vote("d1", "anna")
    assert (anna_d1.label, anna_d1.response_label, anna_d1.comment) == (
        "unsafe",
        "safe",
        "looks bad",
    )
    assert _cat_names(anna_d1) == ["Violence", "Threat"]
    ben_d1 = _vote("d1", "ben")
    assert (ben_d1.label, ben_d1.response_label) == ("unsafe", None)
    assert _cat_names(ben_d1) == ["Criminal Planning/Confessions"]
    assert (_vote("d2", "anna").label, _cat_names(_vote("d2", "anna"))) == ("safe", [])
    ben_d2 = _vote("d2", "ben")
    assert (ben_d2.label, ben_d2.other_text, _cat_names(ben_d2)) == (
        "needs_caution",
        "gaslighting",
        ["Other"],
    )
    assert _cat_names(_vote("d3", "anna")) == [
        "Sexual (minor)",
        "Guns and Illegal Weapons",
    ]
    # and no user was created
    assert User.objects.count() == 2


def test_long_format_jsonl_with_time_spent(tmp_path, batch, raters):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        json.dumps(
            {
                "dialogue_id": "d1",
                "annotator": "anna",
                "label": "unsafe",
                "categories": "Harassment",
                "time_spent_ms": 4200,
            }
        )
        + "\n"
    )

    result = _import(path)

    assert (result.imported, result.error_count) == (1, 0)
    vote = _vote("d1", "anna")
    assert (vote.label, vote.time_spent_ms, vote.comment, vote.other_text) == (
        "unsafe",
        4200,
        "",
        "",
    )
    assert _cat_names(vote) == ["Harassment"]


def test_annotator_names_are_matched_without_surrounding_spaces(
    tmp_path, batch, raters
):
    # given a spreadsheet that padded the annotator's name
    path = _write_csv(
        tmp_path / "labels.csv", [["d1", " anna ", "safe", "", "", "", ""]]
    )

    # when imported
    result = _import(path)

    # then the vote goes to anna
    assert (result.imported, result.error_count) == (1, 0)
    assert _vote("d1", "anna").label == "safe"


# --- annotators -------------------------------------------------------------------


def test_unknown_annotator_is_an_error_without_create_annotators(
    tmp_path, batch, raters
):
    path = _write_csv(
        tmp_path / "labels.csv",
        [["d1", "anna", "safe", "", "", "", ""], ["d1", "zoe", "safe", "", "", "", ""]],
    )
    before = _state()

    result = _import(path)

    assert _texts(result) == [
        "labels.csv, line 3, field 'annotator': no user 'zoe'; "
        "pass --create-annotators to create them"
    ]
    assert (result.imported, result.written) == (0, False)
    assert _state() == before


def test_create_annotators_makes_accounts_without_a_password(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv",
        [["d1", "zoe", "safe", "", "", "", ""], ["d2", "zoe", "safe", "", "", "", ""]],
    )

    result = _import(path, create_annotators=True)

    assert (result.imported, result.error_count) == (2, 0)
    zoe = User.objects.get(username="zoe")
    assert (zoe.role, zoe.is_active, zoe.has_usable_password()) == (
        "annotator",
        True,
        False,
    )
    assert zoe.labels.count() == 2


# --- row errors: file, line and field ---------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            ["d1", "ben", "unsafe", "", "Violence, Space Lasers", "", ""],
            "labels.csv, line 3, field 'categories': unknown category 'Space Lasers'",
        ),
        (
            ["d1", "ben", "unsafe", "", "", "", ""],
            "labels.csv, line 3, field 'categories': at least one is required when "
            "unsafe",
        ),
        (
            ["d1", "ben", "safe", "", "S1", "", ""],
            "labels.csv, line 3, field 'categories': must be empty when the label is "
            "safe",
        ),
        (
            ["d1", "ben", "unsafe", "", "S14", "", ""],
            "labels.csv, line 3, field 'other_text': is required when Other is chosen",
        ),
        (
            ["d1", "ben", "probably fine", "", "", "", ""],
            "labels.csv, line 3, field 'label': must be one of safe, needs_caution, "
            "unsafe, not 'probably fine'",
        ),
        (
            ["d1", "ben", "", "", "", "", ""],
            "labels.csv, line 3, field 'label': must be one of safe, needs_caution, "
            "unsafe, not None",
        ),
        (
            ["d1", "ben", "safe", "fine", "", "", ""],
            "labels.csv, line 3, field 'response_label': must be one of safe, "
            "needs_caution, unsafe or empty, not 'fine'",
        ),
        (
            ["d3", "ben", "safe", "safe", "", "", ""],
            "labels.csv, line 3, field 'response_label': the dialogue has no response",
        ),
        (
            ["d9", "ben", "safe", "", "", "", ""],
            "labels.csv, line 3, field 'dialogue_id': no dialogue 'd9' in this batch",
        ),
        (
            ["", "ben", "safe", "", "", "", ""],
            "labels.csv, line 3, field 'dialogue_id': is empty",
        ),
        (
            ["d1", "", "safe", "", "", "", ""],
            "labels.csv, line 3, field 'annotator': is empty",
        ),
    ],
)
def test_bad_row_names_file_line_and_field_and_nothing_is_written(
    tmp_path, batch, raters, row, expected
):
    # given a good first row and a bad second row (line 3)
    path = _write_csv(
        tmp_path / "labels.csv", [["d2", "anna", "safe", "", "", "", ""], row]
    )
    before = _state()

    # when imported
    result = _import(path)

    # then the one error names the file, line and field; the good row is not written
    assert _texts(result) == [expected]
    assert (result.imported, result.written) == (0, False)
    assert _state() == before


def test_bad_time_spent_is_named(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv",
        [["d1", "anna", "safe", "-5"]],
        header=["dialogue_id", "annotator", "label", "time_spent_ms"],
    )
    before = _state()

    result = _import(path)

    assert _texts(result) == [
        "labels.csv, line 2, field 'time_spent_ms': must be a whole number of "
        "milliseconds, not '-5'"
    ]
    assert _state() == before


def test_csv_row_with_the_wrong_number_of_fields_is_named(tmp_path, batch, raters):
    path = tmp_path / "labels.csv"
    path.write_text("dialogue_id,annotator,label\nd1,anna,safe\nd2,ben,safe,oops\n")
    before = _state()

    result = _import(path)

    assert _texts(result) == ["labels.csv, line 3: has 4 fields, the header has 3"]
    assert _state() == before


def test_missing_required_column_is_refused(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv", [["d1", "safe"]], header=["dialogue_id", "label"]
    )

    with pytest.raises(ImportFailed) as failed:
        _import(path)

    assert str(failed.value) == (
        "labels.csv: missing column(s) annotator; need dialogue_id, annotator, label"
    )
    assert Label.objects.count() == 0


def test_unknown_batch_is_refused(tmp_path, raters):
    path = _write_csv(tmp_path / "labels.csv", [["d1", "anna", "safe", "", "", "", ""]])

    with pytest.raises(ImportFailed) as failed:
        import_labels(path=path, batch_name="nope")

    assert str(failed.value) == "batch 'nope' does not exist"
    assert Label.objects.count() == 0


# --- all or nothing, skip-invalid, duplicates, dry run ----------------------------


def test_skip_invalid_keeps_the_good_rows(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d1", "ben", "unsafe", "", "Space Lasers", "", ""],
            ["d2", "ben", "unsafe", "", "Violence", "", ""],
        ],
    )

    result = _import(path, skip_invalid=True)

    assert (result.imported, result.error_count, result.written) == (2, 1, True)
    assert _texts(result) == [
        "labels.csv, line 3, field 'categories': unknown category 'Space Lasers'"
    ]
    assert sorted(
        Label.objects.values_list("dialogue__external_id", "annotator__username")
    ) == [("d1", "anna"), ("d2", "ben")]


def test_progress_counts_the_rows_read_as_votes(tmp_path, batch, raters, monkeypatch):
    # given progress told every 2 rows, and 4 rows of which the 3rd cannot be read
    monkeypatch.setattr("annotation.imports.services.PROGRESS_EVERY", 2)
    path = tmp_path / "labels.csv"
    path.write_text(
        "dialogue_id,annotator,label\nd1,anna,safe\nd1,ben,safe\nd2,ben,safe,oops\n"
        "d2,anna,safe\n"
    )
    calls: list[tuple[int, str]] = []

    # when imported keeping the good rows
    result = _import(
        path, skip_invalid=True, progress=lambda n, p: calls.append((n, p))
    )

    # then only the three rows read as votes are counted, and only while reading
    assert calls == [(2, "reading")]
    assert _texts(result) == ["labels.csv, line 4: has 4 fields, the header has 3"]
    assert (result.imported, result.written) == (3, True)
    assert sorted(
        Label.objects.values_list("dialogue__external_id", "annotator__username")
    ) == [("d1", "anna"), ("d1", "ben"), ("d2", "anna")]


def test_repeated_rows_and_reimports_are_counted_as_duplicates(tmp_path, batch, raters):
    # given a file with one row repeated exactly
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "unsafe", "", "Violence, Threat", "", ""],
            ["d1", "anna", "unsafe", "", "S1,S11", "", ""],
            ["d2", "anna", "safe", "", "", "", ""],
        ],
    )

    # when imported twice
    first = _import(path)
    second = _import(path)

    # then the repeat is skipped the first time, and everything the second time
    assert (first.imported, first.skipped_duplicates, first.error_count) == (2, 1, 0)
    assert (second.imported, second.skipped_duplicates, second.error_count) == (
        0,
        3,
        0,
    )
    assert second.written is False
    assert Label.objects.count() == 2


def test_a_second_different_vote_in_the_file_names_the_first_line(
    tmp_path, batch, raters
):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d1", "anna", "unsafe", "", "Violence", "", ""],
        ],
    )
    before = _state()

    result = _import(path)

    assert _texts(result) == [
        "labels.csv, line 3, field 'annotator': 'anna' already voted differently on "
        "this dialogue (line 2)"
    ]
    assert _state() == before


def test_a_vote_that_would_change_a_stored_vote_is_an_error(tmp_path, batch, raters):
    # given anna's stored safe vote on d1
    LabelFactory(
        dialogue=Dialogue.objects.get(external_id="d1"),
        annotator=raters["anna"],
        label="safe",
    )
    path = _write_csv(
        tmp_path / "labels.csv", [["d1", "anna", "unsafe", "", "Violence", "", ""]]
    )
    before = _state()

    # when a file says unsafe for the same pair
    result = _import(path)

    # then it is refused (votes are edited in the app), and the vote is unchanged
    assert _texts(result) == [
        "labels.csv, line 2, field 'annotator': 'anna' already has a different vote "
        "on this dialogue"
    ]
    assert _state() == before
    assert _vote("d1", "anna").label == "safe"


def test_dry_run_writes_nothing(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d2", "newbie", "safe", "", "", "", ""],
        ],
    )
    before = _state()

    result = _import(path, dry_run=True, create_annotators=True)

    assert (result.imported, result.error_count) == (2, 0)
    assert (result.dry_run, result.written) == (True, False)
    assert _state() == before


# --- the command ------------------------------------------------------------------


def test_import_labels_command_prints_json(tmp_path, batch, raters):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d1", "anna", "safe", "", "", "", ""],
            ["d2", "carl", "unsafe", "", "Violence", "", ""],
        ],
    )
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import_labels",
        str(path),
        "--batch",
        "votes",
        "--create-annotators",
        "--json",
        stdout=out,
        stderr=err,
    )

    assert err.getvalue() == ""
    printed = json.loads(out.getvalue())
    assert {
        k: printed[k] for k in ("batch", "imported", "skipped_duplicates", "errors")
    } == {"batch": "votes", "imported": 2, "skipped_duplicates": 1, "errors": []}
    assert (printed["error_count"], printed["written"]) == (0, True)
    assert Label.objects.count() == 2
    assert User.objects.filter(username="carl").exists()


def test_import_labels_command_exits_1_and_writes_nothing_on_an_error(
    tmp_path, batch, raters
):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d2", "anna", "unsafe", "", "Nonsense", "", ""],
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    before = _state()

    with pytest.raises(SystemExit) as exited:
        call_command(
            "import_labels",
            str(path),
            "--batch",
            "votes",
            "--json",
            stdout=out,
            stderr=err,
        )

    assert exited.value.code == 1
    assert err.getvalue() == (
        "labels.csv, line 3, field 'categories': unknown category 'Nonsense'\n"
    )
    printed = json.loads(out.getvalue())
    assert (printed["imported"], printed["error_count"], printed["written"]) == (
        0,
        1,
        False,
    )
    assert printed["errors"] == [
        {
            "file": "labels.csv",
            "line": 3,
            "field": "categories",
            "message": "unknown category 'Nonsense'",
            "text": "labels.csv, line 3, field 'categories': unknown category "
            "'Nonsense'",
        }
    ]
    assert _state() == before


def test_import_labels_command_skip_invalid_writes_good_rows_but_exits_1(
    tmp_path, batch, raters
):
    path = _write_csv(
        tmp_path / "labels.csv",
        [
            ["d1", "anna", "safe", "", "", "", ""],
            ["d2", "anna", "unsafe", "", "Nonsense", "", ""],
        ],
    )
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command(
            "import_labels",
            str(path),
            "--batch",
            "votes",
            "--skip-invalid",
            stdout=out,
            stderr=err,
        )

    assert exited.value.code == 1
    assert out.getvalue() == (
        "votes: imported 1, skipped 0 duplicates, 1 labels, 1 errors\n"
    )
    assert list(Label.objects.values_list("dialogue__external_id", "label")) == [
        ("d1", "safe")
    ]


def test_import_labels_command_unknown_batch_is_a_command_error(tmp_path):
    path = _write_csv(tmp_path / "labels.csv", [["d1", "anna", "safe", "", "", "", ""]])

    with pytest.raises(CommandError) as failed:
        call_command("import_labels", str(path), "--batch", "nope")

    assert str(failed.value) == "batch 'nope' does not exist"
