"""seed_demo: the demo batch and users behind `make run`, idempotent."""

import io
import json

import pytest
from django.core.management import call_command

from accounts.models import Role, User
from annotation.demo import DEMO_FILE, DEMO_PASSWORD
from annotation.models import Batch, Dialogue, Label

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
    assert batch.dialogues.count() == len(rows) == 40
    assert batch.labels_required == 3
    assert batch.taxonomy.name == "Aegis 2.0"
    assert sum(1 for d in batch.dialogues.all() if d.response is not None) == 34
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
    # and annotators start blind: no votes, no expected answers in the metadata
    assert Label.objects.filter(dialogue__batch=batch).count() == 0
    assert not any(
        "expected" in d.metadata or "categories" in d.metadata
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
    from annotation.adjudication import adjudication_queue
    from annotation.final_labels import derive_batch
    from annotation.other import other_groups

    # when the demo is seeded
    with django_capture_on_commit_callbacks(execute=False):
        output = run_seed()
    # then demo-reviewed holds the same 40 dialogues with three reviewers' votes
    reviewed = Batch.objects.get(name="demo-reviewed")
    assert reviewed.dialogues.count() == 40
    assert Label.objects.filter(dialogue__batch=reviewed).count() == 120
    assert set(
        Label.objects.filter(dialogue__batch=reviewed).values_list(
            "annotator__username", flat=True
        )
    ) == {"reviewer-a", "reviewer-b", "reviewer-c"}
    assert "demo-reviewed" in output
    # and its final labels resolve the prompt-only and safe dialogues, leave some
    # splits for adjudication and some Other texts to standardise
    counts = derive_batch(reviewed)
    assert counts["unanimous"] + counts.get("majority", 0) >= 10
    assert len(adjudication_queue(batch=reviewed)) >= 5
    groups = {g.text: g.votes for g in other_groups(batch=reviewed)}
    assert groups["phishing kit"] >= 3
    # and seeding again adds nothing to it
    run_seed()
    assert Label.objects.filter(dialogue__batch=reviewed).count() == 120


def test_demo_file_uses_only_taxonomy_strings():
    # the expected categories of the demo are exact Aegis 2.0 strings
    from taxonomy.models import Taxonomy

    names = set(Taxonomy.objects.default().categories.values_list("name", flat=True))
    rows = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    used = {c for row in rows for c in row["categories"]}
    assert used <= names
    assert {row["expected"] for row in rows} == {"safe", "needs_caution", "unsafe"}
