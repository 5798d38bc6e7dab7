"""One family of refusals (accounts.refusals), mapped once for the API and once for
pages and htmx (config.error_pages)."""

import json

import pytest
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory

from accounts.refusals import Conflict, NotALead, Refused
from annotation.adjudication.services import AdjudicationError, AdjudicationInvalid
from annotation.batches.services import BatchError
from annotation.export.services import ExportProblem
from annotation.imports.services import ImportFailed
from annotation.labelling.queue import NotReserved, QueueError, VoteInvalid
from annotation.models import AuditRefused, TransitionRefused
from annotation.other.services import OtherError
from annotation.review.audits.services import AuditError
from annotation.review.gold.services import GoldRefused
from annotation.rules.splits import BadRatios
from annotation.rules.votes import VoteProblem
from config.error_pages import api_exception_handler, refused_response
from jury.generation.services import GenerationError
from jury.runs.services import RunError
from taxonomy.models import TaxonomyLocked
from taxonomy.services import TaxonomyError


@pytest.mark.parametrize(
    "error",
    [
        AdjudicationError,
        AuditError,
        AuditRefused,
        BadRatios,
        BatchError,
        ExportProblem,
        GenerationError,
        GoldRefused,
        ImportFailed,
        OtherError,
        QueueError,
        RunError,
        TaxonomyError,
        TaxonomyLocked,
        TransitionRefused,
    ],
)
def test_every_service_refusal_is_one_family(error: type) -> None:
    assert issubclass(error, Refused)


def test_a_refusal_answers_the_api_with_its_status_and_code() -> None:
    request = APIRequestFactory().post("/api/v1/queue/skip")

    conflict = api_exception_handler(NotReserved("not yours"), {"request": request})
    by_field = api_exception_handler(
        VoteInvalid([VoteProblem("label", "required")]), {"request": request}
    )
    export = api_exception_handler(
        ExportProblem("ratios: they add up to 1.1"), {"request": request}
    )

    assert (conflict.status_code, conflict.data) == (
        409,
        {"detail": "not yours", "code": "not_reserved"},
    )
    assert (by_field.status_code, by_field.data) == (400, {"label": ["required"]})
    assert (export.status_code, export.data) == (
        400,
        {"ratios": ["they add up to 1.1"]},
    )


def test_a_refusal_no_view_answered_is_a_toast_for_htmx_and_a_page_otherwise(
    rf: RequestFactory, db: None
) -> None:
    refused = Conflict("The batch is archived.")
    htmx = rf.post("/batches/x/", HTTP_HX_REQUEST="true")
    htmx.htmx = True  # as django-htmx's middleware sets it
    page = rf.post("/batches/x/")
    page.htmx = False

    for_htmx = refused_response(htmx, refused)
    for_page = refused_response(page, refused)

    assert for_htmx.status_code == 200
    assert for_htmx["HX-Reswap"] == "none"
    assert json.loads(for_htmx["HX-Trigger"]) == {
        "toast": {"message": "The batch is archived.", "level": "error"}
    }
    assert for_page.status_code == 409
    assert "The batch is archived." in for_page.content.decode()
    assert "This could not be done now" in for_page.content.decode()


def test_not_a_lead_is_403_and_the_adjudication_one_is_the_same_class() -> None:
    from annotation.adjudication import services as adjudication
    from annotation.other import services as other

    assert NotALead.status == 403
    assert adjudication.NotALead is other.NotALead is NotALead
    assert issubclass(AdjudicationInvalid, Refused)
