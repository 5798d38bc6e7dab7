"""The leads' audit pages: a batch's audits, drawing a new one, and reviewing its
items one at a time with every vote side by side, feedback on votes, and marking the
dialogue as gold."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import add_refusal
from accounts.http import HtmxHttpRequest
from accounts.permissions import lead_required
from annotation.batches.services import batch_named
from annotation.models import (
    Audit,
    AuditItem,
    Batch,
    Feedback,
    GoldItem,
    Label,
    LabelCategory,
    VoteKind,
)
from annotation.review.audits.forms import AuditForm, FeedbackForm
from annotation.review.audits.services import (
    REVIEWABLE_KINDS,
    AuditError,
    create_audit,
    finished_count,
    give_feedback,
    reopen_item,
    review_item,
)
from annotation.review.gold.forms import GoldAnswerForm
from annotation.review.gold.services import GoldRefused, mark_gold, unmark_gold

PAGE = "annotation/lead/audit_review.html"
# Votes side by side: people first, then the judges, then anything else.
KIND_ORDER = [VoteKind.HUMAN, VoteKind.MODEL, VoteKind.REFERENCE, VoteKind.ADJUDICATED]


def _audit(batch: Batch, pk: int) -> Audit:
    return get_object_or_404(
        Audit.objects.select_related("created_by"), pk=pk, batch=batch
    )


def _errors(error: ValidationError) -> str:
    return "; ".join(error.messages)


@require_http_methods(["GET", "POST"])
@lead_required
def audit_list(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batch_named(name)
    form = AuditForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            audit = create_audit(
                batch=batch, **form.service_arguments(), by=request.user
            )
        except ValidationError as error:
            form.add_error(None, _errors(error))
        except AuditError as error:
            form.add_error(None, str(error))
        else:
            n = audit.items.count()
            messages.success(
                request,
                f"Audit {audit.pk}: {n} of {audit.population} finished "
                f"dialogue{'' if audit.population == 1 else 's'} drawn (seed "
                f"{audit.seed}).",
            )
            return redirect("annotation:audit_item", batch.name, audit.pk, 1)
    context = {
        "batch": batch,
        "form": form,
        "audits": batch.audits.with_progress().select_related("created_by"),
        "finished": finished_count(batch),
        "nav": "batches",
        "tab": "audits",
    }
    return render(request, "annotation/lead/audit_list.html", context)


@require_GET
@lead_required
def audit_detail(request: HtmxHttpRequest, name: str, pk: int) -> HttpResponse:
    """The audit opens on its first item not reviewed yet (the first when done)."""
    audit = _audit(batch_named(name), pk)
    first = (
        audit.items.filter(reviewed_at__isnull=True)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )
    return redirect("annotation:audit_item", name, audit.pk, first or 1)


def _votes(item: AuditItem) -> list[Label]:
    """Every vote on the item's dialogue with its categories and this audit item's
    feedback (three queries, whatever the number of votes)."""
    votes: list[Label] = list(
        Label.objects.filter(dialogue_id=item.dialogue_id)
        .select_related("annotator")
        .prefetch_related(
            Prefetch(
                "label_categories",
                queryset=LabelCategory.objects.select_related("category").order_by(
                    "position"
                ),
            ),
            Prefetch(
                "feedback",
                queryset=Feedback.objects.filter(audit_item=item).select_related(
                    "author"
                ),
                to_attr="item_feedback",
            ),
        )
    )
    votes.sort(
        key=lambda v: (
            KIND_ORDER.index(VoteKind(v.kind)) if v.kind in VoteKind.values else 9,
            v.pk,
        )
    )
    return votes


def item_context(
    batch: Batch,
    audit: Audit,
    position: int,
    *,
    bound: dict[int, FeedbackForm] | None = None,
    gold_form: GoldAnswerForm | None = None,
) -> dict[str, Any]:
    """What the review page shows of one item; `bound` holds forms that failed, by
    vote, so they show their errors."""
    items = list(
        audit.items.order_by("position").values(
            "position", "reviewed_at", "dialogue__external_id"
        )
    )
    item = (
        AuditItem.objects.filter(audit=audit, position=position)
        .select_related("dialogue__gold_item", "reviewed_by")
        .first()
    )
    if item is None:
        raise Http404("No such item in this audit.")
    item.audit = audit
    dialogue = item.dialogue
    votes = _votes(item)
    for vote in votes:
        vote.reviewable = vote.kind in REVIEWABLE_KINDS  # type: ignore[attr-defined]
        given: Feedback | None = next(iter(vote.item_feedback), None)  # type: ignore[attr-defined]
        vote.given = given  # type: ignore[attr-defined]
        form = (bound or {}).get(vote.pk)
        if form is None:
            initial = (
                {
                    "verdict": given.verdict,
                    "guideline_ref": given.guideline_ref,
                    "text": given.text,
                }
                if given
                else {}
            )
            form = FeedbackForm(initial=initial, prefix=f"v{vote.pk}")
        vote.form = form  # type: ignore[attr-defined]
    # Loaded with the item; a dialogue that is not gold has none.
    gold: GoldItem | None = getattr(dialogue, "gold_item", None)
    if gold_form is None and gold is None:
        gold_form = GoldAnswerForm(
            category_names=batch.taxonomy.offered_category_names(), prefix="gold"
        )
    reviewed = sum(1 for i in items if i["reviewed_at"] is not None)
    return {
        "batch": batch,
        "audit": audit,
        "items": items,
        "item": item,
        "dialogue": dialogue,
        "votes": votes,
        "gold": gold,
        "gold_categories": [c.name for c in gold.categories.all()] if gold else [],
        "gold_form": gold_form,
        "reviewed": reviewed,
        "total": len(items),
        "percent": int(100 * reviewed / len(items)) if items else 100,
        "previous": position - 1 if position > 1 else None,
        "next": position + 1 if position < len(items) else None,
        "nav": "batches",
        "tab": "audits",
    }


def _render_item(request: HtmxHttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The page, or for htmx its item fragment with the messages as toasts."""
    if request.htmx:
        return render(request, f"{PAGE}#audit-item", context | {"oob_toasts": True})
    return render(request, PAGE, context)


def _done(
    request: HtmxHttpRequest, batch: Batch, audit: Audit, position: int, toast: str
) -> HttpResponse:
    """After a change to the item: its fragment again (htmx) or a redirect to it."""
    messages.success(request, toast)
    if request.htmx:
        return _render_item(request, item_context(batch, audit, position))
    return redirect(_item_url(batch, audit, position))


@require_GET
@lead_required
def audit_item(
    request: HtmxHttpRequest, name: str, pk: int, position: int
) -> HttpResponse:
    batch = batch_named(name)
    return _render_item(request, item_context(batch, _audit(batch, pk), position))


def _item(audit: Audit, position: int) -> AuditItem:
    return get_object_or_404(AuditItem, audit=audit, position=position)


def _item_url(batch: Batch, audit: Audit, position: int) -> str:
    return reverse("annotation:audit_item", args=[batch.name, audit.pk, position])


@require_POST
@lead_required
def audit_item_review(
    request: HtmxHttpRequest, name: str, pk: int, position: int
) -> HttpResponse:
    """Mark the item reviewed and go on to the next one not reviewed yet (or take the
    review back, with action=reopen)."""
    batch = batch_named(name)
    audit = _audit(batch, pk)
    item = _item(audit, position)
    if request.POST.get("action") == "reopen":
        reopen_item(item=item)
        messages.success(request, f"Item {position} is open again.")
        return redirect(_item_url(batch, audit, position))
    review_item(item=item, by=request.user)
    remaining = list(
        audit.items.filter(reviewed_at__isnull=True)
        .order_by("position")
        .values_list("position", flat=True)
    )
    if not remaining:
        messages.success(request, f"Audit {audit.pk} is done: every item is reviewed.")
        return redirect(_item_url(batch, audit, position))
    later = [p for p in remaining if p > position]
    messages.success(request, f"Item {position} reviewed.")
    return redirect(_item_url(batch, audit, (later or remaining)[0]))


@require_POST
@lead_required
def audit_feedback(
    request: HtmxHttpRequest, name: str, pk: int, position: int, label_id: int
) -> HttpResponse:
    batch = batch_named(name)
    audit = _audit(batch, pk)
    item = _item(audit, position)
    label = get_object_or_404(Label, pk=label_id, dialogue_id=item.dialogue_id)
    form = FeedbackForm(request.POST, prefix=f"v{label.pk}")
    if form.is_valid():
        try:
            give_feedback(item=item, label=label, **form.cleaned_data, by=request.user)
        except ValidationError as error:
            form.add_error(None, _errors(error))
        except AuditError as error:
            form.add_error(None, str(error))
        else:
            return _done(request, batch, audit, position, "Feedback saved.")
    context = item_context(batch, audit, position, bound={label.pk: form})
    return _render_item(request, context)


@require_POST
@lead_required
def audit_item_gold(
    request: HtmxHttpRequest, name: str, pk: int, position: int
) -> HttpResponse:
    """Mark the item's dialogue as gold with the answer posted (or unmark it, with
    action=unmark)."""
    batch = batch_named(name)
    audit = _audit(batch, pk)
    item = _item(audit, position)
    dialogue = item.dialogue
    if request.POST.get("action") == "unmark":
        unmark_gold(dialogue=dialogue)
        return _done(
            request, batch, audit, position, f"{dialogue.external_id} is not gold now."
        )
    form = GoldAnswerForm(
        request.POST,
        category_names=batch.taxonomy.offered_category_names(),
        prefix="gold",
    )
    if form.is_valid():
        try:
            mark_gold(dialogue=dialogue, answer=form.answer(), by=request.user)
        except GoldRefused as refused:
            add_refusal(form, refused.by_field())
        else:
            return _done(
                request, batch, audit, position, f"{dialogue.external_id} is gold now."
            )
    context = item_context(batch, audit, position, gold_form=form)
    return _render_item(request, context)
