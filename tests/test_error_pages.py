"""403, 404 and 500 are pages of the app (config/error_pages.py); the API answers JSON."""

import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from accounts.models import User


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the database fell over")


def forbidden_without_words(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


# A URLconf with the app's URLs and handlers plus two views that fail on purpose.
urlpatterns = [
    path("test-boom/", boom),
    path("test-forbidden/", forbidden_without_words),
    path("", include("config.urls")),
]
handler403 = "config.error_pages.permission_denied"
handler404 = "config.error_pages.page_not_found"
handler500 = "config.error_pages.server_error"


def assert_app_page(html: str, *, title: str) -> None:
    """The app's layout: the top bar with the product and the navigation."""
    assert 'class="topbar"' in html
    assert "Aegis <span>Studio</span>" in html
    assert '<nav class="nav" aria-label="Main">' in html
    assert f'<h1 id="error-title">{title}</h1>' in html


@pytest.mark.parametrize("debug", [False, True])
def test_a_lead_page_refuses_an_annotator_with_a_page_of_the_app(
    annotator_client: Client, settings, debug: bool
) -> None:
    # given DEBUG on (make run) or off (production)
    settings.DEBUG = debug

    # when an annotator opens the batches
    response = annotator_client.get("/batches/", HTTP_REFERER="http://testserver/work/")

    # then the app says why, in its layout, with a way back
    assert response.status_code == 403
    html = response.content.decode()
    assert_app_page(html, title="You cannot open this page")
    assert '<p class="error-message">This page is for leads.</p>' in html
    assert '<a class="btn" href="/">Go to labelling</a>' in html
    assert 'href="http://testserver/work/">Back to the last page</a>' in html
    assert "Traceback" not in html


def test_a_refusal_without_words_gets_the_general_message(
    annotator_client: Client, settings
) -> None:
    settings.ROOT_URLCONF = __name__

    response = annotator_client.get("/test-forbidden/")

    assert response.status_code == 403
    assert "Your role does not give you access to it." in response.content.decode()


def test_a_back_link_never_points_to_another_site(annotator_client: Client) -> None:
    response = annotator_client.get(
        "/batches/", HTTP_REFERER="https://evil.example/phish"
    )

    assert response.status_code == 403
    assert "evil.example" not in response.content.decode()
    assert "Back to the last page" not in response.content.decode()


def test_a_refusal_is_logged_as_one_line_without_a_traceback(
    annotator_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = annotator_client.get("/batches/")

    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "Forbidden: /batches/")
    ]
    assert records[0].exc_info is None


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "/no-such-page-here/",  # matches no URL pattern
        "/batches/no-such-batch/",  # a view's get_object_or_404
    ],
)
def test_a_missing_page_is_a_page_of_the_app(
    lead_client: Client, settings, debug: bool, url: str
) -> None:
    settings.DEBUG = debug

    response = lead_client.get(url)

    assert response.status_code == 404
    html = response.content.decode()
    assert_app_page(html, title="There is no such page")
    assert '<a class="btn" href="/">Go to the batches</a>' in html
    assert f'The address was <span class="code">{url}</span>' in html
    assert "Django" not in html  # not the technical page


def test_a_missing_page_escapes_its_address(lead_client: Client) -> None:
    response = lead_client.get("/<script>alert(1)</script>/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_logged_out_visitor_gets_a_login_link_on_a_missing_page(
    client: Client, db: None
) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert 'href="/accounts/login/?next=/no-such-page/">Log in</a>' in (
        response.content.decode()
    )


def test_an_address_without_its_slash_still_redirects(lead_client: Client) -> None:
    response = lead_client.get("/batches")

    assert response.status_code == 301
    assert response["Location"] == "/batches/"


@pytest.mark.parametrize("debug", [False, True])
def test_the_api_answers_json_errors(
    annotator_client: Client, settings, debug: bool
) -> None:
    settings.DEBUG = debug

    missing = annotator_client.get("/api/v1/no-such-endpoint")
    refused = annotator_client.get("/api/v1/adjudication")

    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert missing.json() == {"detail": "Not found.", "code": "not_found"}
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/json"
    assert refused.json() == {
        "detail": "Only leads and admins may do this.",
        "code": "permission_denied",
    }


def test_a_server_error_is_a_page_of_the_app(lead: User, settings) -> None:
    # given DEBUG off (with it on, Django's debug page with the traceback stays)
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(lead)

    # when a view fails
    response = client.get("/test-boom/")

    # then the person sees the app's page, not the error
    assert response.status_code == 500
    html = response.content.decode()
    assert_app_page(html, title="Something went wrong on our side")
    assert "Your saved work is safe" in html
    assert "the database fell over" not in html


def test_the_api_answers_a_server_error_in_json(rf) -> None:
    from config.error_pages import server_error

    response = server_error(rf.get("/api/v1/labels"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.content == (b'{"detail": "Server error.", "code": "server_error"}')


def test_a_page_of_a_batch_that_does_not_exist_says_which(lead_client: Client) -> None:
    # when a lead opens the settings and the gold page of a batch that is not there
    settings_page = lead_client.get("/batches/nope/settings/")
    gold_page = lead_client.get("/batches/nope/gold/", HTTP_HX_REQUEST="true")

    # then the page is a 404 that names it, and htmx gets the same words as a toast
    assert settings_page.status_code == 404
    assert "There is no batch named &#x27;nope&#x27;." in settings_page.content.decode()
    assert gold_page.status_code == 200
    assert gold_page["HX-Reswap"] == "none"
    assert "There is no batch named 'nope'." in gold_page["HX-Trigger"]
