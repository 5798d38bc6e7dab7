"""The leads' adjudication pages (DESIGN sections 3 and 8): the queue of dialogues
that need a lead, and one dialogue with every vote side by side and the decision
form. What is decided, and how, is `annotation.adjudication.services`'s.

The queue's filters (and the annotator-name toggle) ride in the query string from
the queue to a dialogue, from one dialogue to the next, and back.
"""

from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import add_refusal, posted_next
from accounts.http import HtmxHttpRequest
from accounts.permissions import lead_required
from annotation.adjudication.forms import (
    DECISION_REASONS,
    REASON_LABELS,
    DecisionForm,
    QueueFilterForm,
)
from annotation.adjudication.services import (
    AdjudicationConflict,
    AdjudicationInvalid,
    DialogueCase,
    NotAdjudicated,
    QueueItem,
    accept_unanimous,
    adjudicate,
    adjudication_queue,
    dialogue_case,
    queue_rows,
    read_queue,
    reopen,
    unanimous_counts,
)
from annotation.batches.services import batch_named
from annotation.labelling.views import category_groups
from annotation.models import Confidence, Dialogue, LabelValue
from annotation.rules.labels import BINARY
from taxonomy.models import Category

QUEUE_PAGE = "annotation/adjudication/queue.html"
CASE_PAGE = "annotation/adjudication/adjudicate.html"
PER_PAGE = 50
# What the pages carry from one to the next: the queue's filters and the name toggle.
CARRIED = ("batch", "category", "reason", "incomplete", "names")


def _carried(params: QueryDict, **changes: str) -> str:
    """The query string of what `params` carries (see CARRIED), with `changes`."""
    values = {key: params.get(key, "") for key in CARRIED} | changes
    return urlencode({key: value for key, value in values.items() if value})


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


def _queue_url(params: QueryDict) -> str:
    return _with_query(reverse("annotation:adjudication_queue"), _carried(params))


def _case_url(dialogue_id: int, params: QueryDict) -> str:
    url = reverse("annotation:adjudicate", args=[dialogue_id])
    return _with_query(url, _carried(params))


def _category_names() -> list[str]:
    """Every category name of every taxonomy version, once each, for the filter."""
    names = Category.objects.displayed().values_list("name", flat=True)
    return list(dict.fromkeys(names))


def _filters(params: QueryDict) -> dict[str, Any]:
    return QueueFilterForm(params, category_names=_category_names()).filters()


# --- the queue ----------------------------------------------------------------------


def _vote_summary(votes: dict[str, int]) -> list[tuple[str, str, int]]:
    """(value, label, count) of the 3-way labels that have votes."""
    return [
        (value, text, votes[value])
        for value, text in LabelValue.choices
        if votes.get(value)
    ]


@require_GET
@lead_required
def queue(request: HtmxHttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET, category_names=_category_names())
    filters = form.filters()
    queue = read_queue(**filters)
    page = Paginator(queue.items, PER_PAGE).get_page(request.GET.get("page"))
    shown: list[QueueItem] = list(page.object_list)
    details = queue_rows([item.dialogue_id for item in shown])
    carried = _carried(request.GET)
    rows = [
        {
            "item": item,
            "detail": details[item.dialogue_id],
            "reasons": [(r, REASON_LABELS[r]) for r in item.reasons],
            "waiting": not item.complete,
            "percent": None if item.agreement is None else round(100 * item.agreement),
            "votes": _vote_summary(details[item.dialogue_id].votes),
            "url": _case_url(item.dialogue_id, request.GET),
        }
        for item in shown
        # (a dialogue deleted between the two queries is left out)
        if item.dialogue_id in details
    ]
    unanimous = sorted(unanimous_counts().items())
    if filters["batch"] is not None:
        unanimous = [(n, c) for n, c in unanimous if n == filters["batch"].name]

    def page_url(number: int) -> str:
        return "?" + "&".join(q for q in (carried, f"page={number}") if q)

    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "filtered": any(filters.values()),
        "waiting": queue.waiting,
        "widen_url": _with_query(
            reverse("annotation:adjudication_queue"),
            _carried(request.GET, incomplete="1"),
        ),
        "previous_url": page_url(page.previous_page_number())
        if page.has_previous()
        else None,
        "next_url": page_url(page.next_page_number()) if page.has_next() else None,
        "unanimous": unanimous,
        "here": request.get_full_path(),
        "nav": "adjudication",
    }
    template = f"{QUEUE_PAGE}#queue-table" if request.htmx else QUEUE_PAGE
    return render(request, template, context)


@require_POST
@lead_required
def accept_unanimous_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Accept every unanimous, undecided dialogue of the batch; back to the queue."""
    batch = batch_named(name)
    accepted = accept_unanimous(batch=batch, lead=request.user)
    if accepted:
        messages.success(
            request,
            f"Accepted {accepted} unanimous dialogue{'' if accepted == 1 else 's'} "
            f"of {batch.name} as they were labelled.",
        )
    else:
        messages.info(request, f"{batch.name} has no unanimous dialogue to accept.")
    return redirect(posted_next(request, reverse("annotation:adjudication_queue")))


# --- one dialogue ---------------------------------------------------------------------


def _case(dialogue_id: int) -> DialogueCase:
    case = dialogue_case(dialogue_id)
    if case is None:
        raise Http404("No such dialogue.")
    return case


def _people(case: DialogueCase, names: bool) -> dict[int | None, str]:
    """How each annotator is shown: their name, or "Annotator n" in the order they
    voted (then those who only flagged), so the votes are read, not the people."""
    people = [(v.annotator_id, v.annotator) for v in case.human_votes]
    people += [(f.annotator_id, f.annotator) for f in case.open_flags]
    shown: dict[int | None, str] = {None: "Unknown"}
    for person, user in people:
        if person not in shown:
            name = user.username if user is not None else "Unknown"
            shown[person] = name if names else f"Annotator {len(shown)}"
    return shown


def _position(
    items: list[QueueItem], dialogue_id: int
) -> tuple[int | None, int | None, int | None]:
    """(1-based place of the dialogue in the queue, previous id, next id); a
    dialogue not in the queue has no place and goes on to the queue's first."""
    ids = [item.dialogue_id for item in items]
    if dialogue_id not in ids:
        return None, None, ids[0] if ids else None
    at = ids.index(dialogue_id)
    previous = ids[at - 1] if at > 0 else None
    following = ids[at + 1] if at + 1 < len(ids) else None
    return at + 1, previous, following


def _render_case(
    request: HtmxHttpRequest,
    case: DialogueCase,
    *,
    form: DecisionForm | None = None,
    conflict: str = "",
    version: int | None = None,
) -> HttpResponse:
    """The page; `form` shows a decision back (with its errors), `version` is the
    one the refused form was read at (a fresh read's otherwise)."""
    dialogue = case.dialogue
    batch = dialogue.batch
    names = request.GET.get("names") == "1"
    people = _people(case, names)
    items = adjudication_queue(**_filters(request.GET))
    position, previous, following = _position(items, dialogue.pk)
    item = next((i for i in items if i.dialogue_id == dialogue.pk), None)
    context = {
        "case": case,
        "dialogue": dialogue,
        "batch": batch,
        "final": case.final_label,
        "current": case.current,
        "humans": [(vote, people[vote.annotator_id]) for vote in case.human_votes],
        "flags": [(flag, people[flag.annotator_id]) for flag in case.open_flags],
        "names": names,
        "names_url": _with_query(
            reverse("annotation:adjudicate", args=[dialogue.pk]),
            _carried(request.GET, names="" if names else "1"),
        ),
        "reasons": [(r, REASON_LABELS[r]) for r in item.reasons] if item else [],
        "agreement": None
        if item is None or item.agreement is None
        else round(100 * item.agreement),
        "position": position,
        "total": len(items),
        "previous_url": _case_url(previous, request.GET) if previous else None,
        "next_id": following,
        "next_url": _case_url(following, request.GET) if following else None,
        "queue_url": _queue_url(request.GET),
        "decide_url": _case_url(dialogue.pk, request.GET),
        "reopen_url": _with_query(
            reverse("annotation:adjudication_reopen", args=[dialogue.pk]),
            _carried(request.GET),
        ),
        # The form shows while undecided, and after a refusal with what was sent.
        "show_form": case.current is None or form is not None,
        "version": case.version if version is None else version,
        "form": form or DecisionForm(has_response=dialogue.has_response),
        "conflict": conflict,
        "groups": category_groups(batch),
        "label_choices": list(zip("123", LabelValue.choices, strict=True)),
        "response_choices": list(zip("456", LabelValue.choices, strict=True)),
        "confidence_choices": list(zip("789", Confidence.choices, strict=True)),
        "decision_reasons": DECISION_REASONS,
        "rules_hint": _rules_hint(case),
        "nav": "adjudication",
    }
    return render(request, CASE_PAGE, context)


def _rules_hint(case: DialogueCase) -> str:
    """What "by the rules" gives the response (DESIGN section 3), in words."""
    if case.dialogue.batch.asks_response_label:
        return "the annotators' response labels decide (their majority)"
    latest = case.jury_decisions[0] if case.jury_decisions else None
    if latest is None:
        jury = "the jury's, which has not judged it: choose one instead"
    elif latest.decision in BINARY:
        jury = f"the jury's: {latest.decision}"
    else:
        jury = "the jury's, which needs review: choose one instead"
    return f"safe when the prompt is safe; for an unsafe prompt, {jury}"


def _posted_version(data: QueryDict) -> int | None:
    value = data.get("expected_version", "")
    return int(value) if value.isdigit() else None


def _go_on(request: HtmxHttpRequest, decided: int, wanted: int | None) -> HttpResponse:
    """After a decision: the dialogue the page said was next if it still needs a
    lead, else the queue's first, else the queue (with the same filters)."""
    filters = _filters(request.GET)
    ids = [
        i.dialogue_id for i in adjudication_queue(**filters) if i.dialogue_id != decided
    ]
    target = wanted if wanted in ids else (ids[0] if ids else None)
    if target is None:
        messages.info(
            request,
            "Nothing left to decide"
            + (" with these filters." if any(filters.values()) else "."),
        )
        return redirect(_queue_url(request.GET))
    return redirect(_case_url(target, request.GET))


def _decision_form(request: HtmxHttpRequest, dialogue: Dialogue) -> DecisionForm:
    """The decision posted on the dialogue's page, offering its batch's categories."""
    return DecisionForm(
        request.POST,
        category_names=[
            entry["category"].name
            for _, entries in category_groups(dialogue.batch)
            for entry in entries
        ],
        has_response=dialogue.has_response,
    )


@require_http_methods(["GET", "POST"])
@lead_required
def adjudicate_page(request: HtmxHttpRequest, dialogue_id: int) -> HttpResponse:
    case = _case(dialogue_id)
    if request.method == "GET":
        return _render_case(request, case)
    dialogue = case.dialogue
    form = _decision_form(request, dialogue)
    if not form.is_valid():
        return _render_case(
            request, case, form=form, version=_posted_version(request.POST)
        )
    decision = form.decision()
    try:
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=request.user,
            **asdict(decision),
            expected_version=form.cleaned_data["expected_version"],
        )
    except AdjudicationInvalid as refused:
        add_refusal(form, refused.by_field())
        return _render_case(
            request, case, form=form, version=form.cleaned_data["expected_version"]
        )
    except AdjudicationConflict as conflict:
        # Read again: the page shows the decision in force, with ours kept.
        return _render_case(
            request, _case(dialogue.pk), form=form, conflict=str(conflict)
        )
    except NotAdjudicated as gone:
        raise Http404(str(gone)) from gone
    categories = f" ({', '.join(decision.categories)})" if decision.categories else ""
    messages.success(
        request,
        f"Decided {dialogue.external_id}: {decision.prompt_label}{categories}.",
    )
    return _go_on(request, dialogue.pk, form.cleaned_data["next"])


@require_POST
@lead_required
def reopen_page(request: HtmxHttpRequest, dialogue_id: int) -> HttpResponse:
    """Take the decision back. From a refused decision's form (keep=1), the page
    comes back with that decision still filled in, ready to submit."""
    dialogue = _case(dialogue_id).dialogue
    try:
        reopen(dialogue_id=dialogue_id, lead=request.user)
    except NotAdjudicated as error:
        messages.error(request, str(error))
        return redirect(_case_url(dialogue_id, request.GET))
    if request.POST.get("keep") == "1":
        messages.success(
            request,
            f"Reopened {dialogue.external_id}. Your decision is still in the form: "
            "submit it to put it in force.",
        )
        posted = DecisionForm(request.POST, has_response=dialogue.has_response)
        kept = posted.unchecked()
        return _render_case(request, _case(dialogue_id), form=kept)
    messages.success(
        request,
        f"Reopened {dialogue.external_id}: its votes decide until a lead decides it "
        "again.",
    )
    return redirect(_case_url(dialogue_id, request.GET))
