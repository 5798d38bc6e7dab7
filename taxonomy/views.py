"""Taxonomy versions for leads: browse, clone into a draft, edit the draft, publish."""

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import lead_required
from taxonomy.forms import CategoryFormSet, NewCategoryForm
from taxonomy.models import Group, Taxonomy, TaxonomyLocked
from taxonomy.services import (
    TaxonomyError,
    add_category,
    clone_taxonomy,
    publish_taxonomy,
)


@require_GET
@lead_required
def taxonomy_list(request: HttpRequest) -> HttpResponse:
    versions = Taxonomy.objects.select_related("parent", "created_by").order_by(
        "name", "-version"
    )
    return render(
        request, "taxonomy/list.html", {"versions": versions, "nav": "taxonomy"}
    )


@require_http_methods(["GET", "POST"])
@lead_required
def taxonomy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    taxonomy = get_object_or_404(Taxonomy, pk=pk)
    categories = taxonomy.categories.displayed()
    formset = None
    if not taxonomy.is_published:
        formset = CategoryFormSet(
            request.POST or None, queryset=categories, prefix="cat"
        )
        if request.method == "POST":
            if formset.is_valid():
                with transaction.atomic():
                    formset.save()
                messages.success(request, "Draft saved.")
                return redirect("taxonomy:detail", pk=taxonomy.pk)
            messages.error(request, "Some categories have errors; nothing was saved.")
    elif request.method == "POST":
        messages.error(request, f"{taxonomy} is published and cannot be edited.")
        return redirect("taxonomy:detail", pk=taxonomy.pk)
    groups = [
        (label, [c for c in categories if c.group == value])
        for value, label in Group.choices
    ]
    context = {
        "taxonomy": taxonomy,
        "groups": groups,
        "formset": formset,
        "new_form": NewCategoryForm(),
        "nav": "taxonomy",
    }
    return render(request, "taxonomy/detail.html", context)


@require_POST
@lead_required
def taxonomy_clone(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Taxonomy, pk=pk)
    try:
        draft = clone_taxonomy(source=source, by=request.user)  # type: ignore[arg-type]
    except TaxonomyError as exc:
        messages.error(request, str(exc))
        return redirect("taxonomy:detail", pk=source.pk)
    messages.success(request, f"Created draft {draft} from {source}.")
    return redirect("taxonomy:detail", pk=draft.pk)


@require_POST
@lead_required
def taxonomy_publish(request: HttpRequest, pk: int) -> HttpResponse:
    taxonomy = get_object_or_404(Taxonomy, pk=pk)
    try:
        publish_taxonomy(taxonomy=taxonomy, by=request.user)  # type: ignore[arg-type]
    except (TaxonomyError, TaxonomyLocked) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Published {taxonomy}. It can no longer be edited.")
    return redirect("taxonomy:detail", pk=taxonomy.pk)


@require_POST
@lead_required
def taxonomy_add_category(request: HttpRequest, pk: int) -> HttpResponse:
    taxonomy = get_object_or_404(Taxonomy, pk=pk)
    form = NewCategoryForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(str(e) for e in errors)}")
        return redirect("taxonomy:detail", pk=taxonomy.pk)
    try:
        category = add_category(taxonomy=taxonomy, **form.cleaned_data)
    except (TaxonomyError, TaxonomyLocked) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Added {category}.")
    return redirect("taxonomy:detail", pk=taxonomy.pk)
