"""Forms of the lead's import pages (validation at the edge; rules live in services)."""

import re
from typing import Any

from django import forms
from django.conf import settings

from annotation.imports.formats import FORMATS
from annotation.models import BATCH_NAME_PATTERN, Batch, ImportKind

FORMAT_LABELS = {
    "jsonl": "Generic JSONL (id, prompt, response or turns)",
    "json": "Generic JSON array",
    "csv": "Generic CSV",
    "parquet": "Generic Parquet",
    "aegis2": "Aegis 2.0 (with its final labels)",
    "aegis1": "Aegis 1.0 (labels_0 .. labels_4)",
    "xstest": "XSTest prompts",
    "xstest-completions": "XSTest model completions",
    "hh-rlhf": "Anthropic HH-RLHF transcripts",
    "aart": "AART",
    "simple-safety-tests": "SimpleSafetyTests",
    "do-not-answer": "Do-Not-Answer",
    "openai-moderation": "OpenAI moderation evaluation set",
    "label-studio": "Label Studio JSON export",
}


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, JSON, CSV or Parquet; .gz is fine.")
    kind = forms.ChoiceField(
        choices=ImportKind.choices,
        initial=ImportKind.DIALOGUES,
        widget=forms.RadioSelect,
        help_text="Labels: one human vote per row (dialogue_id, annotator, label, ...).",
    )
    batch = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"list": "batch-names", "autocomplete": "off"}),
        help_text="An existing batch, or a new name with “create the batch” ticked.",
    )
    format = forms.ChoiceField(
        required=False,
        choices=[("", "Detect from the file")]
        + [(f, FORMAT_LABELS.get(f, f)) for f in FORMATS],
    )
    create_batch = forms.BooleanField(
        required=False, label="Create the batch if it is new"
    )
    skip_invalid = forms.BooleanField(
        required=False,
        label="Skip invalid rows",
        help_text="Off: one bad row stops the whole import and nothing is written.",
    )
    create_annotators = forms.BooleanField(
        required=False, label="Create unknown annotators (label imports)"
    )
    transcript = forms.ChoiceField(
        choices=[("chosen", "chosen"), ("rejected", "rejected")],
        initial="chosen",
        label="HH-RLHF transcript",
    )
    first_turn_only = forms.BooleanField(
        required=False, label="HH-RLHF: first human turn only (as Aegis did)"
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.AEGIS_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {limit:,}."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = (data.get("batch") or "").strip()
        data["batch"] = name
        exists = Batch.objects.filter(name=name).exists()
        if name and not exists and not re.match(BATCH_NAME_PATTERN, name):
            self.add_error(
                "batch",
                "Use letters, digits, spaces, dots, dashes and underscores only.",
            )
            return data
        if name and not exists:
            if data.get("kind") == ImportKind.LABELS:
                self.add_error(
                    "batch", f"No batch named “{name}”: import its dialogues first."
                )
            elif not data.get("create_batch"):
                self.add_error(
                    "batch",
                    f"No batch named “{name}”. Tick “create the batch” to make it.",
                )
        return data

    def job_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `jobs.start_import` (page and API share them)."""
        d = self.cleaned_data
        return {
            "upload": d["file"],
            "kind": d["kind"],
            "batch_name": d["batch"],
            "fmt": d["format"],
            "options": {
                "create_batch": d["create_batch"],
                "skip_invalid": d["skip_invalid"],
                "create_annotators": d["create_annotators"],
                "transcript": d["transcript"],
                "first_turn_only": d["first_turn_only"],
            },
        }
