"""HTML pages: home, batches and imports (leads)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from accounts.models import User
from accounts.ordering import by_username
from accounts.permissions import lead_required
from annotation import review_status
from annotation.forms import ImportForm
from annotation.gold_forms import GoldAnswerForm
from annotation.jobs import shown_errors, start_import
from annotation.models import Batch, Dialogue, GoldItem, ImportJob, LabelCategory


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    if request.user.is_lead:
        return redirect("annotation:batch_list")
    return redirect("annotation:workspace")


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
        category_names=list(
            dialogue.batch.taxonomy.categories.active().values_list("name", flat=True)
        ),
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


@require_http_methods(["GET", "POST"])
@lead_required
def import_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            job = start_import(**form.job_arguments(), by=request.user)
            if request.htmx:
                return HttpResponseClientRedirect(job_url(job))
            return redirect(job_url(job))
    else:
        form = ImportForm(initial={"batch": request.GET.get("batch", "")})
    template = "annotation/import_new.html"
    if request.htmx:
        template += "#import-form"
    return render(
        request,
        template,
        {"form": form, "batches": Batch.objects.order_by("name"), "nav": "imports"},
    )


def job_url(job: ImportJob) -> str:
    from django.urls import reverse

    return reverse("annotation:import_detail", args=[job.pk])


@require_GET
@lead_required
def import_list(request: HtmxHttpRequest) -> HttpResponse:
    jobs = ImportJob.objects.select_related("created_by", "batch")[:100]
    return render(
        request, "annotation/import_list.html", {"jobs": jobs, "nav": "imports"}
    )


@require_GET
@lead_required
def import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(
        ImportJob.objects.select_related("batch", "created_by"), pk=pk
    )
    file_errors, row_errors = shown_errors(job)
    template = "annotation/import_detail.html"
    if request.htmx:
        template += "#import-progress"
    context = {
        "job": job,
        "file_errors": file_errors,
        "row_errors": row_errors,
        "nav": "imports",
    }
    return render(request, template, context)
