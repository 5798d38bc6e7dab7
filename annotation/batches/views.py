"""The leads' batch pages: the list, a batch's dialogues with their status, one
dialogue, creating a batch from imported sets, its settings and status, who labels
it (and their daily caps), and its progress with the open flags."""

import copy

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.http import HtmxHttpRequest, page_or_fragment
from accounts.models import User
from accounts.ordering import by_username
from accounts.permissions import lead_required
from annotation.batches import services as batches
from annotation.batches import status as review_status
from annotation.batches.forms import AssignForm, BatchCreateForm, BatchSettingsForm
from annotation.labelling.progress import batch_progress
from annotation.models import (
    Batch,
    BatchStatus,
    Dialogue,
    Flag,
    GoldItem,
    LabelCategory,
    TransitionRefused,
)
from annotation.review.gold.forms import GoldAnswerForm

# The open flags shown at once; the page says how many more there are.
FLAGS_SHOWN = 200
PROGRESS_POLL_SECONDS = 15


@require_http_methods(["GET", "POST"])
@lead_required
def batch_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = BatchCreateForm(request.POST)
        if form.is_valid():
            try:
                batch = batches.create_batch(
                    **form.service_arguments(), by=request.user
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                n = batch.dialogues.count()
                messages.success(
                    request,
                    f"Batch {batch.name} created with {n:,} "
                    f"dialogue{'' if n == 1 else 's'}.",
                )
                url = reverse("annotation:batch_assign", args=[batch.name])
                if request.htmx:
                    return HttpResponseClientRedirect(url)
                return redirect(url)
    else:
        form = BatchCreateForm(initial={"copy_from": request.GET.getlist("from")})
    template = "annotation/lead/batch_new.html"
    if request.htmx:
        template += "#batch-form"
    return render(request, template, {"form": form, "nav": "batches"})


@require_http_methods(["GET", "POST"])
@lead_required
def batch_settings(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batches.batch_named(name)
    # The form writes into its instance while validating; keep the page's batch as
    # stored until the service has saved the change.
    form = BatchSettingsForm(
        request.POST if request.method == "POST" else None, instance=copy.copy(batch)
    )
    if request.method == "POST" and form.is_valid():
        try:
            batches.update_batch_settings(batch=batch, **form.settings())
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Settings of {batch.name} saved.")
            url = reverse("annotation:batch_settings", args=[batch.name])
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
    template = "annotation/lead/batch_settings.html"
    if request.htmx:
        template += "#settings-form"
    context = {
        "batch": batch,
        "form": form,
        "transitions": _transitions(batch),
        "nav": "batches",
        "tab": "settings",
    }
    return render(request, template, context)


def _transitions(batch: Batch) -> list[tuple[str, str]]:
    """The buttons for the status changes allowed from here, as (status, verb)."""
    verbs = {
        BatchStatus.ACTIVE: "Resume" if batch.status == "paused" else "Reactivate",
        BatchStatus.PAUSED: "Pause",
        BatchStatus.ARCHIVED: "Archive",
    }
    allowed = Batch.TRANSITIONS[batch.status]
    return [(s.value, verbs[s]) for s in BatchStatus if s in allowed]


@require_POST
@lead_required
def batch_status(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batches.batch_named(name)
    status = request.POST.get("status", "")
    try:
        batches.set_batch_status(batch=batch, status=status)
    except TransitionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Batch {batch.name} is now {batch.status}.")
    return redirect("annotation:batch_settings", batch.name)


@require_http_methods(["GET", "POST"])
@lead_required
def batch_assign(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batches.batch_named(name)
    annotators = by_username(User.objects.annotators().filter(is_active=True))
    assigned_ids = set(batch.assignments.values_list("annotator_id", flat=True))
    form = AssignForm(
        request.POST if request.method == "POST" else None,
        annotators=annotators,
        assigned_ids=assigned_ids,
    )
    if request.method == "POST" and form.is_valid():
        chosen = form.chosen()
        chosen_ids = {u.pk for u in chosen}
        try:
            with transaction.atomic():
                added = batches.assign_annotators(batch=batch, annotators=chosen)
                removed = batches.unassign_annotators(
                    batch=batch,
                    annotators=[u for u in annotators if u.pk not in chosen_ids],
                )
                capped = batches.set_daily_caps(caps=form.caps())
        except (batches.BatchError, ValidationError) as error:
            messages.error(request, "; ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(
                request,
                f"{batch.name}: {added} assigned, {removed} unassigned, "
                f"{len(capped)} daily caps changed.",
            )
            return redirect("annotation:batch_assign", batch.name)
    context = {"batch": batch, "form": form, "nav": "batches", "tab": "assign"}
    return render(request, "annotation/lead/batch_assign.html", context)


@require_http_methods(["GET"])
@lead_required
def batch_progress_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batches.batch_named(name)
    template = page_or_fragment(
        request, "annotation/lead/batch_progress.html", "batch-progress", "open-flags"
    )
    return render(request, template, _progress_context(batch))


def _progress_context(batch: Batch) -> dict[str, object]:
    flags = (
        Flag.objects.open()
        .filter(dialogue__batch=batch)
        .select_related("dialogue", "annotator")
        .order_by("-created_at", "-pk")
    )
    return {
        "batch": batch,
        "progress": batch_progress(batch),
        "flags": flags[:FLAGS_SHOWN],
        "flag_count": flags.count(),
        "poll_seconds": PROGRESS_POLL_SECONDS,
        "nav": "batches",
        "tab": "progress",
    }


@require_POST
@lead_required
def flag_resolve(request: HtmxHttpRequest, name: str, pk: int) -> HttpResponse:
    batch = batches.batch_named(name)
    flag = get_object_or_404(
        Flag.objects.select_related("dialogue"), pk=pk, dialogue__batch=batch
    )
    batches.resolve_flag(flag=flag, by=request.user)
    messages.success(request, f"Flag on {flag.dialogue.external_id} resolved.")
    if request.htmx:
        return render(
            request,
            "annotation/lead/batch_progress.html#open-flags",
            _progress_context(batch) | {"oob_toasts": True},
        )
    return redirect("annotation:batch_progress", batch.name)


@require_GET
@lead_required
def batch_list(request: HtmxHttpRequest) -> HttpResponse:
    batches = Batch.objects.with_counts().select_related("taxonomy").order_by("name")
    return render(
        request, "annotation/batch_list.html", {"batches": batches, "nav": "batches"}
    )


@require_GET
@lead_required
def batch_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = get_object_or_404(
        Batch.objects.with_counts().select_related("taxonomy"), name=name
    )
    counts = review_status.status_counts(batch)
    status = request.GET.get("status", "")
    status = status if status in counts else review_status.ALL
    page = Paginator(review_status.in_status(batch, status), 50).get_page(
        request.GET.get("page")
    )
    required = batch.labels_required
    context = {
        "batch": batch,
        "page": page,
        "rows": [(d, review_status.status_of(d, required)) for d in page.object_list],
        "status": status,
        "status_counts": [
            (value, label, counts[value]) for value, label in review_status.FILTERS
        ],
        "imports": batch.imports.select_related("created_by")[:10],
        "annotators": by_username(batch.annotators.all()),
        "nav": "batches",
    }
    return render(request, "annotation/batch_detail.html", context)


@require_GET
@lead_required
def dialogue_detail(request: HtmxHttpRequest, name: str, pk: int) -> HttpResponse:
    dialogue = get_object_or_404(
        Dialogue.objects.select_related("batch__taxonomy", "import_job"),
        pk=pk,
        batch__name=name,
    )
    labels = dialogue.labels.select_related("annotator").prefetch_related(
        Prefetch(
            "label_categories",
            queryset=LabelCategory.objects.select_related("category").order_by(
                "position"
            ),
        )
    )
    gold = (
        GoldItem.objects.prefetch_related("categories")
        .filter(dialogue=dialogue)
        .first()
        if dialogue.is_gold
        else None
    )
    gold_form = GoldAnswerForm(
        category_names=dialogue.batch.taxonomy.offered_category_names(),
        prefix="gold",
    )
    context = {
        "dialogue": dialogue,
        "labels": labels,
        "gold": gold,
        "gold_form": gold_form,
        "nav": "batches",
    }
    return render(request, "annotation/dialogue_detail.html", context)
