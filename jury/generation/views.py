"""Generation pages for leads: runs with live progress, and each run's texts."""

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import HtmxHttpRequest, page_or_fragment
from accounts.permissions import lead_required
from jury.generation.forms import GenerationForm
from jury.generation.services import (
    GenerationError,
    cancel_generation_run,
    generation_progress,
    resume_generation_run,
    start_generation_run,
)
from jury.models import GenerationRun, GenerationTarget, TargetStatus

DETAIL = "jury/generation_detail.html"
FILTERS = {"": "All", **dict(TargetStatus.choices)}


@require_GET
@lead_required
def generation_list(request: HtmxHttpRequest) -> HttpResponse:
    runs = (
        GenerationRun.objects.with_counts()
        .select_related("batch", "generator", "created_by")
        .order_by("-created_at")[:50]
    )
    return render(request, "jury/generation_list.html", {"runs": runs, "nav": "jury"})


@require_http_methods(["GET", "POST"])
@lead_required
def generation_new(request: HtmxHttpRequest) -> HttpResponse:
    form = GenerationForm(
        request.POST or None, initial={"batch": request.GET.get("batch")}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = start_generation_run(
                batch=data["batch"],
                generator=data["generator"],
                kind=data["kind"],
                strategies=data["strategies"],
                chunk_size=data["chunk_size"],
                max_tokens=data["max_tokens"],
                by=request.user,
            )
        except GenerationError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Generation run {run.pk} started.")
            return redirect("jury:generation_detail", pk=run.pk)
    return render(request, "jury/generation_new.html", {"form": form, "nav": "jury"})


@require_GET
@lead_required
def generation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        GenerationRun.objects.select_related("batch", "generator", "created_by"), pk=pk
    )
    progress = generation_progress(run)
    context: dict[str, Any] = {"run": run, "progress": progress, "nav": "jury"}
    template = page_or_fragment(request, DETAIL, "generation-progress")
    if template != DETAIL:
        return render(request, template, context)
    selected = request.GET.get("show", "")
    if selected not in FILTERS:
        selected = ""
    targets = GenerationTarget.objects.filter(run=run)
    if selected:
        targets = targets.filter(status=selected)
    page = Paginator(
        targets.select_related("dialogue", "result").order_by("pk"), 50
    ).get_page(request.GET.get("page"))
    context |= {"page": page, "filters": FILTERS, "selected": selected}
    return render(request, DETAIL, context)


@require_POST
@lead_required
def generation_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(GenerationRun, pk=pk)
    cancel_generation_run(run=run)
    messages.success(
        request, f"Generation run {run.pk} cancelled; what it wrote is kept."
    )
    return redirect("jury:generation_detail", pk=run.pk)


@require_POST
@lead_required
def generation_resume(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(GenerationRun.objects.select_related("generator"), pk=pk)
    try:
        resume_generation_run(run=run)
    except GenerationError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"Generation run {run.pk} resumed: only pending texts are queued."
        )
    return redirect("jury:generation_detail", pk=run.pk)
