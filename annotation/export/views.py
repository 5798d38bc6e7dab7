"""The exports pages: snapshots with their progress, a new export (admins), one
snapshot's counts, files and dataset card, and its zip (leads and admins)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.http import HtmxHttpRequest, page_or_fragment
from accounts.permissions import admin_role_required, lead_required
from annotation.export.forms import ExportForm, start_export_from
from annotation.export.services import ExportProblem, snapshot_bytes
from annotation.labelling.guidelines import render_instructions
from annotation.models import ExportSnapshot, JobStatus
from annotation.rules.splits import SPLITS

LIST_SIZE = 100
# What counts["excluded"] holds, as the pages say it.
LEFT_OUT = {
    "unresolved": "unresolved final label",
    "response_unlabelled": "response without a label",
    "refusals_left_out": "refusals left out",
}


@dataclass
class SplitCounts:
    """One line of a snapshot's counts table."""

    split: str
    rows: int
    prompts: int
    prompt_safe: int
    prompt_unsafe: int
    response_safe: int
    response_unsafe: int
    no_response: int
    refusals: int
    topic_following: int


def split_counts(counts: dict[str, Any]) -> list[SplitCounts]:
    """The counts of `run_snapshot` per split, then their total; [] before any."""
    splits = counts.get("splits") or {}
    lines = []
    for split in SPLITS:
        c = splits.get(split)
        if c is None:
            continue
        prompt, response = c.get("prompt_label", {}), c.get("response_label", {})
        lines.append(
            SplitCounts(
                split=split,
                rows=c.get("rows", 0),
                prompts=c.get("prompts", 0),
                prompt_safe=prompt.get("safe", 0),
                prompt_unsafe=prompt.get("unsafe", 0),
                response_safe=response.get("safe", 0),
                response_unsafe=response.get("unsafe", 0),
                no_response=response.get("none", 0),
                refusals=c.get("refusals", 0),
                topic_following=c.get("topic_following", 0),
            )
        )
    if lines:
        fields = [f for f in SplitCounts.__dataclass_fields__ if f != "split"]
        total = {f: sum(getattr(line, f) for line in lines) for f in fields}
        lines.append(SplitCounts(split="all", **total))
    return lines


def left_out(counts: dict[str, Any]) -> list[tuple[str, int]]:
    """The rows the export left out, by reason, as the pages say them."""
    excluded = counts.get("excluded") or {}
    return [(LEFT_OUT.get(k, k.replace("_", " ")), n) for k, n in excluded.items()]


@dataclass
class ExportRow:
    """A snapshot as the list shows it."""

    snapshot: ExportSnapshot
    splits: list[SplitCounts]
    left_out: list[tuple[str, int]]

    @property
    def left_out_total(self) -> int:
        return sum(n for _, n in self.left_out)


@require_GET
@lead_required
def export_list(request: HtmxHttpRequest) -> HttpResponse:
    snapshots = list(ExportSnapshot.objects.select_related("created_by")[:LIST_SIZE])
    rows = [ExportRow(s, split_counts(s.counts), left_out(s.counts)) for s in snapshots]
    template = "annotation/export_list.html"
    if request.htmx:
        template += "#export-table"
    context = {
        "rows": rows,
        "polling": any(not s.finished for s in snapshots),
        "nav": "exports",
    }
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@admin_role_required
def export_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ExportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                snapshot = start_export_from(
                    params=form.export_params(),
                    upload=form.cleaned_data["topic_file"],
                    user=request.user,
                )
            except ExportProblem as problem:
                form.add_problem(problem)
            else:
                url = reverse("annotation:export_detail", args=[snapshot.pk])
                if request.htmx:
                    return HttpResponseClientRedirect(url)
                return redirect(url)
    else:
        form = ExportForm()
    template = "annotation/export_new.html"
    if request.htmx:
        template += "#export-form"
    return render(request, template, {"form": form, "nav": "exports"})


@dataclass
class ExportFile:
    path: str
    sha256: str
    size: int


@dataclass
class Written:
    """What a finished snapshot wrote, read back from its folder."""

    files: list[ExportFile]
    card: SafeString
    card_source: str


def _written(snapshot: ExportSnapshot) -> Written | None:
    """The snapshot's files and dataset card; None before it succeeded, or when its
    folder is gone or unreadable."""
    if snapshot.status != JobStatus.SUCCEEDED or not snapshot.directory:
        return None
    folder = Path(settings.MEDIA_ROOT) / snapshot.directory
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        card = (folder / "README.md").read_text(encoding="utf-8")
        manifest_size = (folder / "manifest.json").stat().st_size
    except (OSError, ValueError):
        return None
    files = [
        ExportFile(path, meta["sha256"], meta["bytes"])
        for path, meta in sorted(manifest.get("files", {}).items())
    ]
    # The manifest cannot hold its own hash: the snapshot row keeps it.
    files.append(ExportFile("manifest.json", snapshot.manifest_sha256, manifest_size))
    return Written(files=files, card=render_instructions(card), card_source=card)


@require_GET
@lead_required
def export_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    snapshot = get_object_or_404(
        ExportSnapshot.objects.select_related("created_by"), pk=pk
    )
    context = {
        "snapshot": snapshot,
        "splits": split_counts(snapshot.counts),
        "left_out": left_out(snapshot.counts),
        "written": _written(snapshot),
        "nav": "exports",
    }
    template = page_or_fragment(
        request, "annotation/export_detail.html", "export-progress"
    )
    return render(request, template, context)


def zip_response(snapshot: ExportSnapshot) -> FileResponse:
    """The snapshot's zip as a download; Http404 until it has been written."""
    if snapshot.status != JobStatus.SUCCEEDED or not snapshot.zip_path:
        raise Http404("This export has no zip yet.")
    try:
        stream = snapshot_bytes(snapshot)
    except FileNotFoundError:
        raise Http404("This export's zip is gone.") from None
    return FileResponse(
        stream, as_attachment=True, filename=Path(snapshot.zip_path).name
    )


@require_GET
@lead_required
def export_download(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    # `lead_required` is typed for HttpResponse; a FileResponse streams instead.
    return cast(HttpResponse, zip_response(get_object_or_404(ExportSnapshot, pk=pk)))
