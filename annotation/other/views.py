"""The leads' Other page: the free texts given with "Other", grouped, and a decision
per group (a fine-grained category, or keep it as Other), saved one row at a time."""

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.http import HtmxHttpRequest
from accounts.permissions import lead_required
from annotation.models import Batch
from annotation.other.forms import KEEP, OtherMappingForm
from annotation.other.services import (
    OtherError,
    OtherGroup,
    map_other,
    normalise,
    other_groups,
    other_usage,
    unmap_other,
)
from taxonomy.models import Category, Group, Taxonomy

PAGE = "annotation/other/groups.html"


@dataclass
class Row:
    """One group as the table shows it: its DOM id, the select's value, an error."""

    group: OtherGroup
    selected: str = ""
    error: str = ""

    @property
    def key(self) -> str:
        # Texts hold anything; the DOM id is a short hash of the normalised text.
        return "other-row-" + hashlib.sha256(self.group.text.encode()).hexdigest()[:12]


def _row(group: OtherGroup) -> Row:
    mapping = group.mapping
    if mapping is None:
        return Row(group)
    return Row(group, str(mapping.category_id) if mapping.category_id else KEEP)


@dataclass
class Filters:
    taxonomy: Taxonomy
    batch: Batch | None
    taxonomies: list[Taxonomy]

    def query(self) -> str:
        params: dict[str, object] = {"taxonomy": self.taxonomy.pk}
        if self.batch is not None:
            params["batch"] = self.batch.name
        return urlencode(params)


def _filters(data: QueryDict) -> Filters:
    """The taxonomy version and batch asked for. A batch alone decides the version;
    a batch of another version than the one asked for is dropped (the lead switched
    versions in the form). With neither, the newest version batches use."""
    taxonomies = list(
        Taxonomy.objects.filter(batches__isnull=False)
        .distinct()
        .order_by("name", "-version")
    )
    taxonomy = None
    if (pk := data.get("taxonomy", "")).isdigit():
        taxonomy = get_object_or_404(Taxonomy, pk=int(pk))
    batch = None
    if data.get("batch"):
        batch = get_object_or_404(
            Batch.objects.select_related("taxonomy"), name=data["batch"]
        )
        if taxonomy is None:
            taxonomy = batch.taxonomy
        elif batch.taxonomy_id != taxonomy.pk:
            batch = None
    if taxonomy is None:
        taxonomy = (
            max(taxonomies, key=lambda t: t.pk)
            if taxonomies
            else Taxonomy.objects.default()
        )
    return Filters(taxonomy, batch, taxonomies)


def _categories(taxonomy: Taxonomy) -> list[Category]:
    return list(
        taxonomy.categories.active().filter(group=Group.FINE_GRAINED).order_by("order")
    )


def _context(filters: Filters, rows: list[Row]) -> dict[str, Any]:
    groups = [r.group for r in rows]
    return {
        "rows": rows,
        "taxonomy": filters.taxonomy,
        "batch": filters.batch,
        "taxonomies": filters.taxonomies,
        "batches": filters.taxonomy.batches.order_by("name"),
        "categories": _categories(filters.taxonomy),
        "query": filters.query(),
        "n_votes": sum(g.votes for g in groups),
        "n_decided": sum(g.decided for g in groups),
        "keep": KEEP,
        "nav": "other",
    }


@require_GET
@lead_required
def other_groups_page(request: HtmxHttpRequest) -> HttpResponse:
    filters = _filters(request.GET)
    groups = other_groups(taxonomy=filters.taxonomy, batch=filters.batch)
    return render(request, PAGE, _context(filters, [_row(g) for g in groups]))


def _saved_message(text: str, target: str, votes: int, batches: int) -> str:
    where = f"{votes} vote{'' if votes == 1 else 's'} in {batches} "
    where += "batch" if batches == 1 else "batches"
    return f"“{text}” {target}: {where}; final labels and exports follow."


@require_POST
@lead_required
def other_map(request: HtmxHttpRequest) -> HttpResponse:
    """Save one group's decision; answers with its row (htmx) or the page."""
    filters = _filters(request.POST)
    form = OtherMappingForm(request.POST)
    error = ""
    text = normalise(request.POST.get("text", ""))
    if form.is_valid():
        text = normalise(form.cleaned_data["text"])
        category: Category | None = form.cleaned_data["category"]
        try:
            if form.resets:
                unmap_other(taxonomy=filters.taxonomy, text=text, lead=request.user)
                target = "is undecided again and counts as Other"
            else:
                map_other(
                    taxonomy=filters.taxonomy,
                    text=text,
                    category=category,
                    lead=request.user,
                )
                target = f"maps to {category.name}" if category else "stays Other"
        except OtherError as refused:
            error = str(refused)
        else:
            usage = other_usage(taxonomy=filters.taxonomy, text=text)
            messages.success(
                request,
                _saved_message(text, target, usage.votes, len(usage.batch_ids)),
            )
    else:
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    if not request.htmx and not error:
        url = reverse("annotation:other_groups") + "?" + filters.query()
        return redirect(url)
    rows = [
        _row(g) for g in other_groups(taxonomy=filters.taxonomy, batch=filters.batch)
    ]
    found = next((r for r in rows if r.group.text == text), None)
    if error and found:
        found.error = error
        found.selected = request.POST.get("category", "")
    elif error:
        messages.error(request, f"Not saved: {error}")
    context = _context(filters, rows)
    if not request.htmx:
        return render(request, PAGE, context)
    # The row is the target; the toast and the counters above the table ride
    # along out of band, so the page never shows counts from before the save.
    context |= {"oob": True}
    if found is None:
        # No vote gives this text (any more): the row goes, the toast says why.
        return HttpResponse(
            render_to_string(PAGE + "#other-toasts", context, request)
            + render_to_string(PAGE + "#other-summary", context, request)
        )
    return render(request, PAGE + "#other-row", context | {"row": found})
