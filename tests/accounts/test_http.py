"""How a view picks the page or one of its fragments (accounts.http)."""

from typing import cast

from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from accounts.http import HtmxHttpRequest, page_or_fragment

PAGE = "jury/run_detail.html"
FRAGMENTS = ("run-progress", "run-results")


def request(**headers: str) -> HtmxHttpRequest:
    made = cast(HtmxHttpRequest, RequestFactory().get("/jury/runs/1/", headers=headers))
    made.htmx = HtmxDetails(made)
    return made


def test_htmx_asking_for_a_fragment_by_its_target_gets_that_fragment():
    asked = request(**{"HX-Request": "true", "HX-Target": "run-results"})

    assert page_or_fragment(asked, PAGE, *FRAGMENTS) == f"{PAGE}#run-results"


def test_anything_else_gets_the_whole_page():
    plain = request()
    # a target the page does not name as a fragment, or none (a boosted link)
    other = request(**{"HX-Request": "true", "HX-Target": "main"})
    untargeted = request(**{"HX-Request": "true"})
    # the header without htmx's request header is not htmx
    not_htmx = request(**{"HX-Target": "run-progress"})

    assert page_or_fragment(plain, PAGE, *FRAGMENTS) == PAGE
    assert page_or_fragment(other, PAGE, *FRAGMENTS) == PAGE
    assert page_or_fragment(untargeted, PAGE, *FRAGMENTS) == PAGE
    assert page_or_fragment(not_htmx, PAGE, *FRAGMENTS) == PAGE
