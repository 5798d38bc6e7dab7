"""The import pages (leads): upload a file, watch its import run in the worker, read
its errors."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.http import HtmxHttpRequest, page_or_fragment
from accounts.permissions import lead_required
from annotation.imports.forms import ImportForm
from annotation.imports.jobs import shown_errors, start_import
from annotation.models import Batch, ImportJob


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
    template = page_or_fragment(
        request, "annotation/import_detail.html", "import-progress"
    )
    context = {
        "job": job,
        "file_errors": file_errors,
        "row_errors": row_errors,
        "nav": "imports",
    }
    return render(request, template, context)
