"""The new-export form and the handling of its upload (input checks only; the rules
live in `annotation.export.services`, which the page and the API both call)."""

import shutil
import uuid
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import get_valid_filename

from accounts.models import User
from annotation.export.services import ExportParams, ExportProblem, start_export
from annotation.models import Batch, ExportSnapshot, NeedsCautionPolicy
from annotation.rules.splits import DEFAULT_RATIOS, BadRatios, parse_ratios

TOPIC_SUFFIXES = (".json", ".jsonl")
POLICY_CHOICES = [("", "Each batch's own policy"), *NeedsCautionPolicy.choices]


def topic_upload_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads" / "topic-files"


def store_topic_file(upload: UploadedFile) -> Path:
    """Keep an uploaded topic-following file where the export's worker reads it.

    Each upload gets a folder of its own, so two files of one name never meet. The
    file stays after the export: it is one of the snapshot's inputs (the manifest
    holds its hash), and a run that died half way is started again from it.
    """
    folder = topic_upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    name = get_valid_filename(Path(upload.name or "topics").name) or "topics.jsonl"
    path = folder / name
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


def start_export_from(
    *, params: ExportParams, upload: UploadedFile | None, user: User
) -> ExportSnapshot:
    """`start_export` with the topic file uploaded with the request, if any.

    Raises ExportProblem as `start_export` does; the stored upload is then removed.
    """
    if upload is None:
        return start_export(params=params, user=user)
    path = store_topic_file(upload)
    try:
        return start_export(
            params=ExportParams(
                batches=params.batches,
                seed=params.seed,
                ratios=params.ratios,
                needs_caution_policy=params.needs_caution_policy,
                include_refusals=params.include_refusals,
                topic_file=str(path),
            ),
            user=user,
        )
    except ExportProblem:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def check_topic_upload(upload: UploadedFile) -> None:
    """Raises ValidationError for a file the export would not read (its content is
    read by the worker, which reports a bad line on the snapshot)."""
    name = (upload.name or "").lower()
    if not name.endswith(TOPIC_SUFFIXES):
        raise forms.ValidationError(
            "Upload a CantTalkAboutThis file: .json (an array) or .jsonl."
        )
    limit = settings.AEGIS_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise forms.ValidationError(
            f"The file is {upload.size:,} bytes; the limit is {limit:,}."
        )


class BatchChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Batch) -> str:
        n = getattr(obj, "n_dialogues", None)
        if n is None:
            return obj.name
        return f"{obj.name} ({n:,} dialogue{'' if n == 1 else 's'})"


class RatiosWidget(forms.MultiWidget):
    def __init__(self) -> None:
        share = {"step": "0.01", "min": "0", "max": "1", "inputmode": "decimal"}
        super().__init__([forms.NumberInput(attrs=share) for _ in range(3)])

    def decompress(self, value: Any) -> list[Any]:
        return list(value) if value else [None, None, None]


class RatiosField(forms.MultiValueField):
    """Three shares, train / validation / test, checked by `parse_ratios`."""

    widget = RatiosWidget

    def __init__(self, **kwargs: Any) -> None:
        fields = tuple(forms.FloatField(min_value=0, max_value=1) for _ in range(3))
        super().__init__(fields, **kwargs)

    def compress(self, data_list: list[float]) -> tuple[float, float, float] | None:
        if not data_list:
            return None
        try:
            return parse_ratios(data_list)
        except BadRatios as exc:
            message = str(exc)
            raise forms.ValidationError(message[:1].upper() + message[1:]) from None


class ExportForm(forms.Form):
    batches = BatchChoice(
        queryset=Batch.objects.none(),
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        label="Batches",
        error_messages={"required": "Choose at least one batch."},
        help_text="Their final labels are brought up to date before the export.",
    )
    ratios = RatiosField(
        initial=list(DEFAULT_RATIOS),
        label="Split ratios",
        help_text="Train, validation and test shares; they add up to 1.",
    )
    seed = forms.IntegerField(
        min_value=0,
        initial=0,
        label="Seed",
        help_text="The same data, seed and ratios give the same splits.",
    )
    needs_caution_policy = forms.ChoiceField(
        choices=POLICY_CHOICES,
        required=False,
        initial="",
        widget=forms.RadioSelect,
        label="Needs caution counts as",
    )
    include_refusals = forms.BooleanField(
        required=False,
        initial=True,
        label="Include generated refusals",
        help_text="Refusals go to train and validation only, never to test.",
    )
    topic_file = forms.FileField(
        required=False,
        label="Topic-following file (optional)",
        help_text="CantTalkAboutThis JSON or JSONL: its conversations are blended "
        "into the fine-tuning files.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        batches = self.fields["batches"]
        assert isinstance(batches, BatchChoice)
        batches.queryset = Batch.objects.with_counts().order_by("name")

    def clean_topic_file(self) -> UploadedFile | None:
        upload = self.cleaned_data.get("topic_file")
        if upload:
            check_topic_upload(upload)
        return upload or None

    def export_params(self) -> ExportParams:
        """The parameters of `start_export`, without the topic file (which is
        stored by `start_export_from`)."""
        d = self.cleaned_data
        return ExportParams(
            batches=tuple(b.name for b in d["batches"]),
            seed=d["seed"],
            ratios=d["ratios"],
            needs_caution_policy=d["needs_caution_policy"],
            include_refusals=d["include_refusals"],
        )

    def add_problem(self, problem: ExportProblem) -> None:
        """Show a refusal of `start_export` on the field it names."""
        field, message = problem.parameter()
        self.add_error(field, message[:1].upper() + message[1:])
