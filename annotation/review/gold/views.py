"""The leads' gold page: a batch's gold items with their answers, each annotator's
accuracy on them, adding gold items by id and removing them; and marking one
dialogue as gold from its page."""

from collections import Counter
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import add_refusal, posted_next
from accounts.http import HtmxHttpRequest
from accounts.permissions import lead_required
from annotation.batches.services import batch_named
from annotation.models import Batch, Dialogue
from annotation.review.gold.forms import GoldAddForm, GoldAnswerForm
from annotation.review.gold.services import (
    GoldRefused,
    gold_items,
    gold_votes,
    mark_gold,
    mark_gold_many,
    score_gold_votes,
    unmark_gold,
)


def gold_context(batch: Batch, form: GoldAddForm) -> dict[str, Any]:
    """The gold items, each annotator's accuracy and each item's votes (a fixed
    number of queries, whatever the number of items, votes or people)."""
    items = gold_items(batch)
    votes = gold_votes(batch)
    n_votes = Counter(v.dialogue for v in votes)
    n_right = Counter(v.dialogue for v in votes if v.label == v.gold_label)
    rows = [
        {
            "gold": g,
            "categories": [c.name for c in g.categories.all()],
            "votes": n_votes[g.dialogue_id],
            "right": n_right[g.dialogue_id],
        }
        for g in items
    ]
    accuracy = [
        {"username": name, **numbers}
        for name, numbers in score_gold_votes(votes).items()
    ]
    return {
        "batch": batch,
        "rows": rows,
        "accuracy": accuracy,
        "form": form,
        "nav": "batches",
        "tab": "gold",
    }


@require_http_methods(["GET", "POST"])
@lead_required
def gold_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batch_named(name)
    form = GoldAddForm(
        request.POST if request.method == "POST" else None,
        category_names=batch.taxonomy.offered_category_names(),
    )
    if request.method == "POST" and form.is_valid():
        try:
            made = mark_gold_many(
                batch=batch,
                external_ids=form.cleaned_data["external_ids"],
                answer=form.answer(),
                by=request.user,
            )
        except GoldRefused as refused:
            add_refusal(form, refused.by_field())
        else:
            messages.success(
                request,
                f"{len(made)} gold item{'' if len(made) == 1 else 's'} saved.",
            )
            return redirect("annotation:gold", batch.name)
    return render(request, "annotation/lead/gold.html", gold_context(batch, form))


@require_POST
@lead_required
def gold_mark(request: HtmxHttpRequest, name: str, pk: int) -> HttpResponse:
    """Mark one dialogue as gold with the answer posted (its page's gold form)."""
    batch = batch_named(name)
    dialogue = get_object_or_404(Dialogue, pk=pk, batch=batch)
    back = posted_next(
        request, reverse("annotation:dialogue_detail", args=[batch.name, dialogue.pk])
    )
    form = GoldAnswerForm(
        request.POST,
        category_names=batch.taxonomy.offered_category_names(),
        prefix="gold",
    )
    if not form.is_valid():
        messages.error(request, "Not saved: " + _form_errors(form))
        return redirect(back)
    try:
        mark_gold(dialogue=dialogue, answer=form.answer(), by=request.user)
    except GoldRefused as refused:
        messages.error(request, f"Not saved: {refused}")
    else:
        messages.success(request, f"{dialogue.external_id} is gold now.")
    return redirect(back)


def _form_errors(form: GoldAnswerForm) -> str:
    parts = []
    for field, errors in form.errors.items():
        text = " ".join(str(e) for e in errors)
        parts.append(text if field == "__all__" else f"{field}: {text}")
    return "; ".join(parts)


@require_POST
@lead_required
def gold_unmark(request: HtmxHttpRequest, name: str, pk: int) -> HttpResponse:
    batch = batch_named(name)
    dialogue = get_object_or_404(Dialogue, pk=pk, batch=batch)
    if unmark_gold(dialogue=dialogue):
        messages.success(
            request, f"{dialogue.external_id} is not gold now; its votes stay."
        )
    return redirect(posted_next(request, reverse("annotation:gold", args=[batch.name])))
