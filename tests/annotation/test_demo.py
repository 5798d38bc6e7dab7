"""seed_demo: the demo batch and users behind `make run`, idempotent."""

import io
import json

import pytest
from django.core.management import call_command

from accounts.models import Role, User
from annotation.demo import (
    DEMO_FILE,
    DEMO_PASSWORD,
    REVIEWERS,
    demo_rows,
    dialogue_length,
    review_ms,
)
from annotation.models import Batch, Dialogue, Flag, Label

pytestmark = pytest.mark.django_db


def run_seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_batch_users_and_assignments():
    # when the demo is seeded
    output = run_seed()

    # then the demo batch holds every dialogue of the demo file, needing 3 votes
    batch = Batch.objects.get(name="demo")
    rows = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    assert batch.dialogues.count() == len(rows) == 43
    assert batch.labels_required == 3
    assert batch.taxonomy.name == "Aegis 2.0"
    assert sum(1 for d in batch.dialogues.all() if d.response is not None) == 37
    # and annotator1..12, lead and admin exist with the printed password
    annotators = User.objects.filter(username__startswith="annotator")
    assert sorted(annotators.values_list("username", flat=True)) == sorted(
        f"annotator{k}" for k in range(1, 13)
    )
    assert set(annotators.values_list("role", flat=True)) == {Role.ANNOTATOR}
    assert User.objects.get(username="lead").role == Role.LEAD
    admin = User.objects.get(username="admin")
    assert (admin.role, admin.is_staff, admin.is_superuser) == (Role.ADMIN, True, True)
    people = User.objects.exclude(username__startswith="reviewer-")
    assert all(u.check_password(DEMO_PASSWORD) for u in people)
    # (the reviewers of demo-reviewed are imported raters without a password)
    reviewers = User.objects.filter(username__startswith="reviewer-")
    assert reviewers.count() == 3
    assert not any(u.has_usable_password() for u in reviewers)
    # and every annotator is assigned to the batch
    assert set(batch.annotators.values_list("username", flat=True)) == {
        f"annotator{k}" for k in range(1, 13)
    }
    # and the logins are printed
    assert "annotator1 .. annotator12" in output
    assert DEMO_PASSWORD in output
    # and annotators start blind: no votes, no answers or reviews in the metadata
    assert Label.objects.filter(dialogue__batch=batch).count() == 0
    assert not any(
        set(d.metadata) & {"expected", "categories", "reviews", "flags"}
        for d in Dialogue.objects.all()
    )


def test_seed_demo_twice_changes_nothing():
    # given a seeded demo in which an annotator changed their password
    run_seed()
    user = User.objects.get(username="annotator3")
    user.set_password("my-own-secret")
    user.save()
    before = (Dialogue.objects.count(), User.objects.count(), Batch.objects.count())

    # when it is seeded again
    output = run_seed()

    # then no row is added and the password is kept
    assert (
        Dialogue.objects.count(),
        User.objects.count(),
        Batch.objects.count(),
    ) == before
    assert "(0 new)" in output
    assert User.objects.get(username="annotator3").check_password("my-own-secret")


def test_the_reviewed_demo_batch_gives_the_leads_screens_something_to_show(
    django_capture_on_commit_callbacks,
):
    from annotation.adjudication.services import adjudication_queue
    from annotation.final_labels.services import derive_batch
    from annotation.other.services import other_groups

    # when the demo is seeded
    with django_capture_on_commit_callbacks(execute=False):
        output = run_seed()
    # then demo-reviewed holds the same 43 dialogues with three reviewers' votes
    reviewed = Batch.objects.get(name="demo-reviewed")
    assert reviewed.dialogues.count() == 43
    assert Label.objects.human().filter(dialogue__batch=reviewed).count() == 129
    assert set(
        Label.objects.human()
        .filter(dialogue__batch=reviewed)
        .values_list("annotator__username", flat=True)
    ) == {"reviewer-a", "reviewer-b", "reviewer-c"}
    assert "demo-reviewed" in output
    # and its final labels resolve the prompt-only and safe dialogues, leave the
    # human splits for adjudication and the Other texts to standardise
    counts = derive_batch(reviewed)
    assert counts["unanimous"] + counts.get("majority", 0) >= 10
    assert len(adjudication_queue(batch=reviewed)) >= 8
    groups = {g.text: (g.votes, g.examples) for g in other_groups(batch=reviewed)}
    assert groups["jailbreak"] == (2, ["jailbreak"])
    assert groups["jailbreak attempt, role-play"] == (
        2,
        ["Jailbreak attempt, role-play", "jailbreak attempt, role-play."],
    )
    assert groups["animal cruelty"] == (1, ["animal cruelty"])
    # and the reviewer's flag is there for the leads
    flag = Flag.objects.get(dialogue__batch=reviewed)
    assert (flag.dialogue.external_id, flag.annotator.username, flag.reason) == (
        "demo-034",
        "reviewer-c",
        "guideline_unclear",
    )
    # and seeding again adds nothing to it
    run_seed()
    assert Label.objects.human().filter(dialogue__batch=reviewed).count() == 129
    assert Flag.objects.count() == 1


def test_the_reviewers_votes_are_the_ones_written_next_to_each_dialogue():
    # given the demo file and the seeded demo
    rows = {row["id"]: row for row in demo_rows()}
    run_seed()

    # then every reviewer's stored vote is the one the file states for them
    votes = (
        Label.objects.human()
        .filter(dialogue__batch__name="demo-reviewed")
        .select_related("dialogue", "annotator")
        .prefetch_related("label_categories__category")
    )
    for vote in votes:
        written = rows[vote.dialogue.external_id]["reviews"][vote.annotator.username]
        assert (
            vote.label,
            [lc.category.name for lc in vote.label_categories.order_by("position")],
            vote.other_text,
            vote.comment,
        ) == (
            written["label"],
            written.get("categories", []),
            written.get("other", ""),
            written.get("comment", ""),
        ), vote.dialogue.external_id
    # and an Other text appears only on a dialogue our own answer says needs Other
    # (no listed category fits it), never on an unrelated one
    with_other = {v.dialogue.external_id for v in votes if v.other_text}
    assert with_other == {"demo-033", "demo-041", "demo-042", "demo-043"}
    assert all("Other" in rows[d]["categories"] for d in with_other)


def test_the_reviewers_work_at_their_own_pace():
    # given the demo's dialogues, short and long
    rows = demo_rows()
    by_length = sorted(rows, key=dialogue_length)
    short, long = by_length[0], by_length[-1]

    # then the careful reviewer is slowest, the fast one fastest, on every dialogue
    for row in rows:
        a, b, c = (review_ms(row, r) for r in REVIEWERS)
        assert a > c > b, row["id"]
    # and each takes longer on the longest dialogue than on the shortest
    for reviewer in REVIEWERS:
        assert review_ms(long, reviewer) > review_ms(short, reviewer)
    # and the times are fixed numbers, the same on every machine (no random state)
    assert review_ms(rows[0], "reviewer-b") == 17242


def test_demo_file_uses_only_taxonomy_strings():
    # the expected categories of the demo are exact Aegis 2.0 strings
    from taxonomy.models import Taxonomy

    names = set(Taxonomy.objects.default().categories.values_list("name", flat=True))
    rows = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    used = {c for row in rows for c in row["categories"]}
    used |= {
        c
        for row in rows
        for vote in row["reviews"].values()
        for c in vote.get("categories", [])
    }
    assert used <= names
    assert {row["expected"] for row in rows} == {"safe", "needs_caution", "unsafe"}
