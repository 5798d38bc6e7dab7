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
    assert all(u.check_password(DEMO_PASSWORD) for u in User.objects.all())
    # and every annotator is assigned to the batch
    assert set(batch.annotators.values_list("username", flat=True)) == {
        f"annotator{k}" for k in range(1, 13)
    }
    # and the logins are printed
    assert "annotator1 .. annotator12" in output
    assert DEMO_PASSWORD in output
    # and annotators start blind: no votes, no expected answers in the metadata
    assert Label.objects.count() == 0
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


def test_demo_file_uses_only_taxonomy_strings():
    # the expected categories of the demo are exact Aegis 2.0 strings
    from taxonomy.models import Taxonomy

    names = set(Taxonomy.objects.default().categories.values_list("name", flat=True))
    rows = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    used = {c for row in rows for c in row["categories"]}
    assert used <= names
    assert {row["expected"] for row in rows} == {"safe", "needs_caution", "unsafe"}
