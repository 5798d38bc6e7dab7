"""The leads' agreement dashboard of a batch: summary tiles, warnings, a table of the
annotators and the charts of `annotation.agreement.charts`, all read from the batch's cached
`AgreementReport` (so the page costs the same few queries whatever the votes)."""

from typing import Any

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh, reswap, retarget

from accounts.http import HtmxHttpRequest
from accounts.ordering import natural_sorted
from accounts.permissions import lead_required
from annotation.agreement import charts
from annotation.agreement import services as agreement
from annotation.batches.services import batch_named
from annotation.models import AgreementReport, Batch, JobStatus

TEMPLATE = "annotation/lead/batch_agreement.html"
POLL_SECONDS = 2
WAITING = (JobStatus.PENDING, JobStatus.RUNNING)


@require_GET
@lead_required
def agreement_page(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batch_named(name)
    if request.htmx and request.htmx.target == "agreement-status":
        # Polled while a worker computes: read the row only, compute nothing.
        polled = AgreementReport.objects.filter(batch=batch).first()
        if polled is None:
            return HttpResponseClientRefresh()
        if polled.status in WAITING:
            context = _context(batch, polled, dashboard=False)
            return render(request, TEMPLATE + "#agreement-status", context)
        response = render(request, TEMPLATE + "#agreement", _context(batch, polled))
        return reswap(retarget(response, "#agreement"), "outerHTML")
    report = agreement.report_for(batch)
    if request.GET.get("format") == "json":
        return _json(batch, report)
    return render(request, TEMPLATE, _context(batch, report))


@require_POST
@lead_required
def agreement_recompute(request: HtmxHttpRequest, name: str) -> HttpResponse:
    batch = batch_named(name)
    # `schedule`, not `report_for(force_async=True)`: that one hands back a current
    # report as it is, and a lead presses Recompute because they doubt it (a setting
    # such as the fast-label threshold changed, which the fingerprint does not see).
    agreement.schedule(batch)
    messages.success(
        request,
        f"The agreement report of {batch.name} is being computed; "
        "this page updates when it is ready.",
    )
    return redirect("annotation:batch_agreement", batch.name)


def _json(batch: Batch, report: AgreementReport) -> HttpResponse:
    """The report as a download, or where it stands (the API's answers)."""
    if report.status == JobStatus.SUCCEEDED and report.data is not None:
        response = JsonResponse(report.data, json_dumps_params={"ensure_ascii": False})
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=f"agreement-{batch.name}.json"
        )
        return response
    if report.status == JobStatus.FAILED:
        return JsonResponse(
            {"status": report.status, "error": report.error}, status=500
        )
    return JsonResponse(
        {"status": report.status, "requested_at": report.requested_at}, status=202
    )


def _context(
    batch: Batch, report: AgreementReport, *, dashboard: bool = True
) -> dict[str, Any]:
    """The page's context; `dashboard=False` for the status alone (polled every 2 s)."""
    data = report.data
    context: dict[str, Any] = {
        "batch": batch,
        "report": report,
        "data": data,
        "waiting": report.status in WAITING,
        "current": report.status == JobStatus.SUCCEEDED,
        "poll_seconds": POLL_SECONDS,
        "nav": "batches",
        "tab": "agreement",
    }
    if data is not None and dashboard:
        context |= {
            "tiles": summary_tiles(data),
            "annotators": annotator_rows(data),
            "warnings": data.get("warnings") or [],
            "charts": charts.dashboard(data),
            "duration": charts.duration(report.duration_ms)
            if report.duration_ms is not None
            else None,
        }
    return context


# --- what the template shows, from the report's data --------------------------------


def _metric(
    summary: dict[str, Any], field: str, title: str, interval: bool
) -> dict[str, Any]:
    value = summary.get(field)
    ci = (summary.get("ci95") or {}).get(field) if interval else None
    reasons = summary.get("reason") or {}
    return {
        "title": title,
        "value": charts.fmt(value),
        "defined": value is not None,
        "interval": charts.fmt_interval(ci) if ci else "",
        "reason": "" if value is not None else reasons.get(field, "no data"),
    }


def summary_tiles(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One tile per label the batch has: Fleiss' kappa, alpha with its interval and
    percent agreement, or why each is not defined."""
    policy = data.get("needs_caution_policy") or ""
    rows = [
        ("label", "Dialogue label, 3-way"),
        ("label_binary", f"Dialogue label, binary ({policy})"),
        ("response_label", "Response label"),
    ]
    if data.get("imported_label") is not None:
        rows.append(("imported_label", "Imported label"))
    tiles: list[dict[str, Any]] = []
    for key, title in rows:
        summary = data.get(key)
        if summary is None:
            tiles.append({"key": key, "title": title, "absent": f"no {title.lower()}s"})
            continue
        tiles.append(
            {
                "key": key,
                "title": title,
                "n_items": summary.get("n_items"),
                "n_raters": summary.get("n_raters"),
                "metrics": [
                    _metric(
                        summary, "krippendorff_alpha", "Krippendorff's alpha", True
                    ),
                    _metric(summary, "fleiss_kappa", "Fleiss' kappa", True),
                    _metric(summary, "percent_agreement", "Percent agreement", False),
                ],
            }
        )
    return tiles


def _versus(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """Agreement and kappa with a reference (majority, adjudication, jury)."""
    if found is None:
        return None
    return {
        "agreement": charts.fmt(found.get("agreement")),
        "kappa": charts.fmt(found.get("cohen_kappa")),
        "n": found.get("n", 0),
        "reason": found.get("reason", ""),
    }


def annotator_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The annotators table: votes, agreement with the others' majority, with the
    adjudications and the jury, gold accuracy, median time and warnings."""
    annotators = data.get("annotators") or {}
    rows = []
    for name in natural_sorted(annotators):
        a = annotators[name]
        gold = a.get("gold")
        times = a.get("time_ms")
        rows.append(
            {
                "name": name,
                "votes": a.get("n_votes", 0),
                "majority": _versus(a.get("vs_majority")),
                "adjudicated": _versus(a.get("vs_adjudicated")),
                "jury": _versus(a.get("vs_jury")),
                "gold": None
                if not gold
                else {
                    "accuracy": charts.fmt(gold.get("label_accuracy")),
                    "jaccard": charts.fmt(gold.get("category_jaccard")),
                    "n": gold.get("n", 0),
                },
                "median": charts.duration(times["median"]) if times else None,
                "fast_votes": a.get("fast_votes") or 0,
                "warnings": a.get("warnings") or [],
            }
        )
    return rows
