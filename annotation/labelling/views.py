"""The annotator's workspace: consent, the labelling page, skip, flag, undo, history,
and the leads' feedback on their votes.

Every view starts from `request.user`; a dialogue is only ever shown to the person it
is reserved for (or who labelled it), and never with anyone else's vote.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from accounts.forms import add_refusal, posted_next
from accounts.http import HtmxHttpRequest
from annotation.labelling.forms import FlagForm, SkipForm, VoteForm
from annotation.labelling.guidelines import render_instructions
from annotation.labelling.progress import my_progress
from annotation.labelling.queue import (
    NothingToDo,
    QueueError,
    VoteInvalid,
    acknowledge_warning,
    edit_label,
    flag_dialogue,
    reserve_next,
    skip_dialogue,
    submit_label,
    vote_snapshot,
)
from annotation.models import (
    Batch,
    Dialogue,
    Feedback,
    Label,
    LabelCategory,
    LabelValue,
    Reservation,
    ReservationState,
)
from annotation.review.audits.services import mark_feedback_read
from taxonomy.models import DISPLAY_GROUPS, Group

PAGE = "annotation/work/workspace.html"
HOTKEYS = "abcdefghijklmnopqrstuvwxyz"


def consent_required(view: Any) -> Any:
    """Nothing is served before the content warning is acknowledged."""

    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_acknowledged_warning:
            url = reverse("annotation:consent")
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = url
                return response
            return redirect(url)
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return login_required(wrapped)


def category_groups(batch: Batch) -> list[tuple[str, list[dict[str, Any]]]]:
    """The batch's active categories, grouped core / fine-grained / meta, each with
    its hotkey letter (in display order) and guidance."""
    categories = list(batch.taxonomy.categories.active().displayed())
    groups: dict[str, list[dict[str, Any]]] = {g.label: [] for g in DISPLAY_GROUPS}
    for key, category in zip(HOTKEYS, categories, strict=False):
        groups[Group(category.group).label].append(
            {"category": category, "hotkey": key}
        )
    return [(name, items) for name, items in groups.items() if items]


def workspace_context(
    request: HtmxHttpRequest,
    *,
    dialogue: Dialogue | None,
    reservation: Reservation | None = None,
    nothing: NothingToDo | None = None,
    form: VoteForm | None = None,
    editing: Label | None = None,
) -> dict[str, Any]:
    """The page; `form` is a vote shown back (refused, or a label to edit), an empty
    one otherwise."""
    batch = dialogue.batch if dialogue else None
    progress = my_progress(request.user)
    return {
        "dialogue": dialogue,
        "batch": batch,
        "reservation": reservation,
        "nothing": nothing,
        "groups": category_groups(batch) if batch else [],
        "label_choices": list(zip("123", LabelValue.choices, strict=True)),
        "response_choices": list(zip("456", LabelValue.choices, strict=True)),
        "ask_response": bool(
            dialogue and dialogue.batch.asks_response_label and dialogue.has_response
        ),
        "form": form or VoteForm(),
        "editing": editing,
        "progress": progress,
        "in_batch": progress.in_batch(batch.name) if batch else 0,
        "instructions": render_instructions(batch.instructions) if batch else "",
        "flag_form": FlagForm(),
        "blur": request.user.blur_text,
        "nav": "work",
    }


def render_workspace(request: HtmxHttpRequest, **kwargs: Any) -> HttpResponse:
    template = f"{PAGE}#workspace" if request.htmx else PAGE
    return render(request, template, workspace_context(request, **kwargs))


def render_next(
    request: HtmxHttpRequest, toast: str = "", level: str = "success"
) -> HttpResponse:
    """The annotator's next dialogue (their own live reservation first)."""
    result = reserve_next(annotator=request.user)
    if isinstance(result, NothingToDo):
        response = render_workspace(request, dialogue=None, nothing=result)
    else:
        response = render_workspace(
            request, dialogue=result.dialogue, reservation=result
        )
    if toast:
        if request.htmx:
            trigger_client_event(response, "toast", {"message": toast, "level": level})
        else:
            getattr(messages, level)(request, toast)
    return response


def _after_post(
    request: HtmxHttpRequest, toast: str, level: str = "success"
) -> HttpResponse:
    if request.htmx:
        return render_next(request, toast, level)
    getattr(messages, level)(request, toast)
    return redirect("annotation:workspace")


@require_http_methods(["GET", "POST"])
@login_required
def consent(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        acknowledge_warning(annotator=request.user)
        request.user.blur_text = request.POST.get("blur_text") == "on"
        request.user.save(update_fields=["blur_text"])
        return redirect("annotation:workspace")
    return render(request, "annotation/work/consent.html", {"nav": "work"})


@require_GET
@consent_required
def workspace(request: HtmxHttpRequest) -> HttpResponse:
    return render_next(request)


def _reserved_dialogue(request: HtmxHttpRequest, dialogue_id: int) -> Dialogue | None:
    reservation = (
        Reservation.objects.filter(
            dialogue_id=dialogue_id,
            annotator=request.user,
            state=ReservationState.ACTIVE,
        )
        .select_related("dialogue__batch__taxonomy")
        .first()
    )
    return reservation.dialogue if reservation else None


@require_POST
@consent_required
def submit(request: HtmxHttpRequest, dialogue_id: int) -> HttpResponse:
    dialogue = _reserved_dialogue(request, dialogue_id)
    if dialogue is None:
        return _after_post(
            request, "That dialogue is no longer reserved for you.", "error"
        )
    form = VoteForm(
        request.POST, category_names=dialogue.batch.taxonomy.offered_category_names()
    )
    if form.is_valid():
        try:
            submit_label(
                annotator=request.user,
                dialogue_id=dialogue.pk,
                vote=form.vote(),
                time_spent_ms=form.cleaned_data["time_spent_ms"],
            )
        except VoteInvalid as error:
            add_refusal(form, error.by_field())
        except QueueError as error:
            return _after_post(request, str(error), "error")
        else:
            return _after_post(request, "Saved.")
    return render_workspace(request, dialogue=dialogue, form=form)


@require_POST
@consent_required
def skip(request: HtmxHttpRequest, dialogue_id: int) -> HttpResponse:
    form = SkipForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        skip_dialogue(annotator=request.user, dialogue_id=dialogue_id, reason=reason)
    except (QueueError, Dialogue.DoesNotExist) as error:
        return _after_post(request, str(error), "error")
    return _after_post(request, "Skipped: it goes to someone else.")


@require_POST
@consent_required
def flag(request: HtmxHttpRequest, dialogue_id: int) -> HttpResponse:
    form = FlagForm(request.POST)
    if not form.is_valid():
        return _after_post(request, "Choose why you flag it.", "error")
    try:
        flag_dialogue(
            annotator=request.user,
            dialogue_id=dialogue_id,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except (QueueError, Dialogue.DoesNotExist) as error:
        return _after_post(request, str(error), "error")
    return _after_post(request, "Flagged for a lead, and skipped.")


def _my_label(request: HtmxHttpRequest, pk: int) -> Label:
    return get_object_or_404(
        Label.objects.human().select_related("dialogue__batch__taxonomy"),
        pk=pk,
        annotator=request.user,
    )


@require_GET
@consent_required
def undo(request: HtmxHttpRequest) -> HttpResponse:
    """Reopen my most recent label for editing."""
    last = (
        Label.objects.human()
        .filter(annotator=request.user)
        .order_by("-created_at")
        .first()
    )
    if last is None:
        return _after_post(
            request, "There is no label of yours to reopen yet.", "error"
        )
    return _edit_page(request, last)


def _edit_page(
    request: HtmxHttpRequest, label: Label, form: VoteForm | None = None
) -> HttpResponse:
    """The workspace on one's own label: as stored, or as `form` sent it back."""
    return render_workspace(
        request,
        dialogue=label.dialogue,
        form=form or VoteForm(initial=vote_snapshot(label)),
        editing=label,
    )


@require_http_methods(["GET", "POST"])
@consent_required
def edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    label = _my_label(request, pk)
    if request.method == "GET":
        return _edit_page(request, label)
    form = VoteForm(
        request.POST,
        category_names=label.dialogue.batch.taxonomy.offered_category_names(),
    )
    if form.is_valid():
        try:
            edit_label(annotator=request.user, label_id=label.pk, vote=form.vote())
        except VoteInvalid as error:
            add_refusal(form, error.by_field())
        except QueueError as error:
            return _after_post(request, str(error), "error")
        else:
            return _after_post(request, "Your label was updated.")
    return _edit_page(request, label, form)


@require_GET
@consent_required
def history(request: HtmxHttpRequest) -> HttpResponse:
    labels = (
        Label.objects.human()
        .filter(annotator=request.user)
        .select_related("dialogue__batch")
        .prefetch_related("label_categories__category", "edits")
        .order_by("-created_at")
    )
    page = Paginator(labels, 25).get_page(request.GET.get("page"))
    context = {"page": page, "progress": my_progress(request.user), "nav": "history"}
    return render(request, "annotation/work/history.html", context)


@require_POST
@login_required
def preferences(request: HtmxHttpRequest) -> HttpResponse:
    request.user.blur_text = request.POST.get("blur_text") == "on"
    request.user.save(update_fields=["blur_text"])
    messages.success(
        request,
        "Text is blurred until revealed."
        if request.user.blur_text
        else "Text is shown.",
    )
    return redirect(posted_next(request, reverse("annotation:history")))


@require_GET
@consent_required
def feedback(request: HtmxHttpRequest) -> HttpResponse:
    """The leads' feedback on my votes, newest first, unread ones marked."""
    mine = (
        Feedback.objects.for_annotator(request.user)
        .select_related("label__dialogue__batch", "author")
        .prefetch_related(
            Prefetch(
                "label__label_categories",
                queryset=LabelCategory.objects.select_related("category").order_by(
                    "position"
                ),
            )
        )
        .order_by("-updated_at", "-pk")
    )
    page = Paginator(mine, 25).get_page(request.GET.get("page"))
    return render(
        request, "annotation/work/feedback.html", {"page": page, "nav": "feedback"}
    )


@require_POST
@consent_required
def feedback_read(request: HtmxHttpRequest) -> HttpResponse:
    """Mark one piece of feedback read (`id`), or all of mine without one."""
    given = request.POST.getlist("id")
    ids = [int(i) for i in given if i.isdigit()]
    n = mark_feedback_read(annotator=request.user, ids=ids if given else None)
    messages.success(request, f"{n} marked read." if n != 1 else "Marked read.")
    return redirect(posted_next(request, reverse("annotation:feedback")))
