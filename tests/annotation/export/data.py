"""Labelled batches for the export tests, written in bulk (thousands of dialogues)."""

import random
from dataclasses import dataclass, field

from accounts.models import User
from annotation.imports.formats import content_hash
from annotation.models import (
    Augmentation,
    Batch,
    Dialogue,
    Label,
    LabelCategory,
    VoteKind,
)
from taxonomy.models import Category, Taxonomy

CATEGORY_NAMES = ("Violence", "Malware", "PII/Privacy", "Harassment")


@dataclass
class Made:
    batch: Batch
    # external id -> the prompt label the votes give
    truth: dict[str, str] = field(default_factory=dict)
    refusals: int = 0


def labelled_batch(
    name: str,
    n: int,
    *,
    seed: int = 1,
    response_every: int = 3,
    refusal_every: int = 0,
    shared_prompt_every: int = 0,
    unsafe_share: float = 0.4,
) -> Made:
    """A batch of `n` dialogues with three human votes each and a clear majority.

    Every `response_every`-th dialogue has a response and a safe majority (its
    response is then safe, source human). Every `refusal_every`-th unsafe one also
    gets a refusal (a REFERENCE label, as generation writes it); every
    `shared_prompt_every`-th dialogue repeats the previous one's prompt with
    another response, so one prompt has two rows.
    """
    rng = random.Random(seed)
    taxonomy = Taxonomy.objects.default()
    categories = {
        c.name: c
        for c in Category.objects.filter(taxonomy=taxonomy, name__in=CATEGORY_NAMES)
    }
    people = [
        User.objects.get_or_create(username=f"{name}-ann{k}", role="annotator")[0]
        for k in range(3)
    ]
    batch = Batch.objects.create(name=name, taxonomy=taxonomy, labels_required=3)
    made = Made(batch=batch)
    dialogues: list[Dialogue] = []
    plans: list[tuple[bool, list[str]]] = []
    for i in range(n):
        has_response = i % response_every == 0 if response_every else False
        unsafe = (not has_response) and rng.random() < unsafe_share
        if shared_prompt_every and i % shared_prompt_every == 1 and i > 0:
            # another response to the previous prompt, one the votes find safe
            prompt = dialogues[-1].prompt
            has_response = True
            unsafe = False
        else:
            prompt = f"{name} prompt {i}: " + " ".join(
                rng.choices(["alpha", "bravo", "charlie", "delta", "echo"], k=8)
            )
        response = f"response {i}" if has_response else None
        turns = [{"role": "user", "content": prompt}]
        if response is not None:
            turns.append({"role": "assistant", "content": response})
        dialogues.append(
            Dialogue(
                batch=batch,
                external_id=f"{name}-{i:05d}",
                source="test",
                prompt=prompt,
                response=response,
                turns=turns,
                content_hash=content_hash(turns),
            )
        )
        picked = rng.sample(CATEGORY_NAMES, 2)
        plans.append((unsafe, picked))
        made.truth[f"{name}-{i:05d}"] = "unsafe" if unsafe else "safe"
    refusal_of: list[int] = []
    if refusal_every:
        for i, (unsafe, _) in enumerate(plans):
            if unsafe and i % refusal_every == 0:
                turns = [
                    {"role": "user", "content": dialogues[i].prompt},
                    {"role": "assistant", "content": f"I won't help with {i}."},
                ]
                dialogues.append(
                    Dialogue(
                        batch=batch,
                        external_id=dialogues[i].external_id,
                        source="generated",
                        augmentation=Augmentation.REFUSAL,
                        prompt=dialogues[i].prompt,
                        response=f"I won't help with {i}.",
                        turns=turns,
                        content_hash=content_hash(turns),
                    )
                )
                refusal_of.append(i)
    made.refusals = len(refusal_of)
    dialogues = Dialogue.objects.bulk_create(dialogues, batch_size=2000)
    votes: list[Label] = []
    for i, (unsafe, _) in enumerate(plans):
        n_unsafe = rng.choice([2, 3]) if unsafe else rng.choice([0, 1])
        for k in range(3):
            votes.append(
                Label(
                    dialogue=dialogues[i],
                    kind=VoteKind.HUMAN,
                    annotator=people[k],
                    label="unsafe" if k < n_unsafe else "safe",
                    time_spent_ms=10_000,
                )
            )
    for j in range(len(refusal_of)):
        votes.append(
            Label(
                dialogue=dialogues[n + j],
                kind=VoteKind.REFERENCE,
                label="unsafe",
                response_label="safe",
                prompt_label_source="human",
                response_label_source="refusal_data_augmentation",
            )
        )
    votes = Label.objects.bulk_create(votes, batch_size=2000)
    links = []
    by_dialogue = {d.pk: k for k, d in enumerate(dialogues)}
    for vote in votes:
        k = by_dialogue[vote.dialogue_id]
        if vote.label != "unsafe":
            continue
        picked = plans[k][1] if k < n else plans[refusal_of[k - n]][1]
        links += [
            LabelCategory(label=vote, category=categories[c], position=p)
            for p, c in enumerate(picked[:1] if vote.kind == VoteKind.HUMAN else picked)
        ]
    LabelCategory.objects.bulk_create(links, batch_size=2000)
    return made
