"""factory_boy factories for the domain models."""

import factory
from django.contrib.auth.hashers import make_password

from accounts.models import Role, User
from annotation.imports.formats import content_hash
from annotation.models import Assignment, Batch, Dialogue, Label, VoteKind
from taxonomy.models import Taxonomy

PASSWORD = "correct-horse-battery"
_HASHED = make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    role = Role.ANNOTATOR
    password = _HASHED


class LeadFactory(UserFactory):
    role = Role.LEAD


class AdminFactory(UserFactory):
    role = Role.ADMIN
    is_staff = True
    is_superuser = True


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    name = factory.Sequence(lambda n: f"batch-{n}")
    taxonomy = factory.LazyFunction(lambda: Taxonomy.objects.default())


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    batch = factory.SubFactory(BatchFactory)
    annotator = factory.SubFactory(UserFactory)


def _turns(obj: "DialogueFactory") -> list[dict[str, str]]:
    turns = [{"role": "user", "content": obj.prompt}]
    if obj.response is not None:
        turns.append({"role": "assistant", "content": obj.response})
    return turns


class DialogueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dialogue

    batch = factory.SubFactory(BatchFactory)
    external_id = factory.Sequence(lambda n: f"d-{n:05d}")
    source = "test"
    prompt = factory.Sequence(lambda n: f"Prompt number {n}?")
    response = factory.Sequence(lambda n: f"Answer number {n}.")
    turns = factory.LazyAttribute(_turns)
    content_hash = factory.LazyAttribute(lambda o: content_hash(o.turns))


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    dialogue = factory.SubFactory(DialogueFactory)
    kind = VoteKind.HUMAN
    annotator = factory.SubFactory(UserFactory)
    label = "safe"
