"""Jury pages for leads: runs with live progress, each run's votes side by side, and
the judges (read-only; admins edit them in the admin)."""

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import HtmxHttpRequest, page_or_fragment
from accounts.permissions import lead_required
from annotation.facade import Dialogue, JuryDecision, Label, LabelCategory, VoteKind
from jury.models import Judge, JuryRun, RunDialogue, Scope
from jury.presence import queue_listeners
from jury.rules.aggregation import pairwise_agreement
from jury.runs.forms import RunForm, ScopeForm
from jury.runs.services import (
    RunError,
    cancel_run,
    nothing_to_judge,
    resume_run,
    run_progress,
    run_state,
    scope_selection,
    start_run,
)
from jury.runs.state import Waiting

RUN_NEW = "jury/run_new.html"
RUN_DETAIL = "jury/run_detail.html"

FILTERS = {
    "": "All",
    "unsafe": "Unsafe",
    "safe": "Safe",
    "needs_review": "Needs review",
    "undecided": "Not decided yet",
    "disagreement": "Judges disagree",
    "invalid": "With an invalid vote",
}


def _judge_rows(judges: list[Judge]) -> list[tuple[Judge, Any]]:
    """Each judge with the worker seen on its queue (one query for all)."""
    listeners = queue_listeners(j.queue_name for j in judges)
    return [(j, listeners[j.queue_name]) for j in judges]


@require_GET
@lead_required
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    runs = JuryRun.objects.select_related("batch", "created_by").prefetch_related(
        "judges"
    )[:50]
    judges = _judge_rows(list(Judge.objects.order_by("name")))
    return render(
        request, "jury/run_list.html", {"runs": runs, "judges": judges, "nav": "jury"}
    )


@require_GET
@lead_required
def judge_list(request: HtmxHttpRequest) -> HttpResponse:
    judges = _judge_rows(list(Judge.objects.order_by("name")))
    return render(request, "jury/judge_list.html", {"judges": judges, "nav": "jury"})


def _scope_summary(data: Any) -> dict[str, Any]:
    """What the run would judge with the form's scope as filled in so far."""
    form = ScopeForm({"scope": Scope.UNSAFE_MAJORITY} | data.dict())
    if not form.is_valid():
        return {"selection": None}
    scope = form.cleaned_data["scope"]
    selection = scope_selection(
        batch=form.cleaned_data["batch"],
        scope=scope,
        sources=form.cleaned_data["sources"],
        include_incomplete=form.cleaned_data["include_incomplete"],
    )
    return {
        "selection": selection,
        "summary_batch": form.cleaned_data["batch"],
        "empty_reason": ""
        if selection.dialogue_ids
        else nothing_to_judge(scope, selection),
    }


@require_http_methods(["GET", "POST"])
@lead_required
def run_new(request: HtmxHttpRequest) -> HttpResponse:
    # The summary follows the form as it is filled in: htmx sends its fields.
    template = page_or_fragment(request, RUN_NEW, "scope-summary")
    if template != RUN_NEW:
        return render(request, template, _scope_summary(request.GET))
    form = RunForm(request.POST or None, initial={"batch": request.GET.get("batch")})
    if request.method == "POST" and form.is_valid():
        try:
            run = start_run(
                batch=form.cleaned_data["batch"],
                judges=list(form.cleaned_data["judges"]),
                scope=form.cleaned_data["scope"],
                sources=form.cleaned_data["sources"],
                include_incomplete=form.cleaned_data["include_incomplete"],
                chunk_size=form.cleaned_data["chunk_size"],
                by=request.user,
            )
        except RunError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Jury run {run.pk} started.")
            return redirect("jury:run_detail", pk=run.pk)
    context = {"form": form, "nav": "jury"}
    context |= _scope_summary(request.POST if request.method == "POST" else request.GET)
    return render(request, RUN_NEW, context)


def _dialogue_rows(run: JuryRun, selected: str) -> Any:
    targets = Dialogue.objects.filter(
        pk__in=RunDialogue.objects.filter(run=run).values("dialogue_id")
    )
    decisions = JuryDecision.objects.filter(run_key=run.key)
    votes = Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key)
    if selected in ("safe", "unsafe", "needs_review"):
        targets = targets.filter(
            pk__in=decisions.filter(decision=selected).values("dialogue_id")
        )
    elif selected == "undecided":
        targets = targets.exclude(pk__in=decisions.values("dialogue_id"))
    elif selected == "disagreement":
        targets = targets.filter(
            pk__in=votes.filter(valid=True)
            .values("dialogue_id")
            .annotate(n=Count("label", distinct=True))
            .filter(n__gt=1)
            .values("dialogue_id")
        )
    elif selected == "invalid":
        targets = targets.filter(pk__in=votes.filter(valid=False).values("dialogue_id"))
    return targets.order_by("pk").prefetch_related(
        Prefetch(
            "labels",
            queryset=votes.prefetch_related(
                Prefetch(
                    "label_categories",
                    queryset=LabelCategory.objects.select_related("category"),
                )
            ).order_by("judge"),
            to_attr="run_votes",
        ),
        Prefetch("jury_decisions", queryset=decisions, to_attr="run_decisions"),
    )


@require_GET
@lead_required
def run_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JuryRun.objects.select_related("batch"), pk=pk)
    progress = run_progress(run)
    context: dict[str, Any] = {
        "run": run,
        "progress": progress,
        "state": run_state(run, progress),
        "waiting": Waiting.from_json(run.waiting_for_votes).text(
            included=run.include_incomplete
        ),
        "nav": "jury",
    }
    template = page_or_fragment(request, RUN_DETAIL, "run-progress", "run-results")
    if template == f"{RUN_DETAIL}#run-progress":
        return render(request, template, context)
    selected = request.GET.get("show", "")
    if selected not in FILTERS:
        selected = ""
    judges = list(run.judges.order_by("name"))
    page = Paginator(_dialogue_rows(run, selected), 50).get_page(
        request.GET.get("page")
    )
    for dialogue in page.object_list:
        by_judge = {vote.judge: vote for vote in dialogue.run_votes}
        dialogue.judge_votes = [by_judge.get(j.name) for j in judges]
        dialogue.decision = (
            dialogue.run_decisions[0] if dialogue.run_decisions else None
        )
    labels: dict[str, dict[str, str | None]] = defaultdict(dict)
    for dialogue_id, judge, label, valid in Label.objects.filter(
        kind=VoteKind.MODEL, run_key=run.key
    ).values_list("dialogue_id", "judge", "label", "valid"):
        labels[str(dialogue_id)][judge] = label if valid else None
    agreement = pairwise_agreement(labels)
    matrix = [
        (
            a,
            [
                agreement.get((a.name, b.name), agreement.get((b.name, a.name)))
                for b in judges
            ],
        )
        for a in judges
    ]
    context |= {
        "judges": judges,
        "page": page,
        "filters": FILTERS,
        "selected": selected,
        "matrix": matrix,
    }
    return render(request, template, context)


@require_POST
@lead_required
def run_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JuryRun, pk=pk)
    cancel_run(run=run)
    messages.success(request, f"Run {run.pk} cancelled; its votes so far are kept.")
    return redirect("jury:run_detail", pk=run.pk)


@require_POST
@lead_required
def run_resume(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JuryRun, pk=pk)
    try:
        resume_run(run=run)
    except RunError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"Run {run.pk} resumed: only missing votes are queued."
        )
    return redirect("jury:run_detail", pk=run.pk)
