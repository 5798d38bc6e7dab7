"""Logging in and out, roles, and what each role may open."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from tests.conftest import login
from tests.factories import PASSWORD, UserFactory

LOGIN = "/accounts/login/"
LOGOUT = "/accounts/logout/"


def logged_in_as(client: Client) -> str | None:
    return client.session.get(SESSION_KEY)


# --- login and logout ----------------------------------------------------------------


def test_the_login_page_renders_with_username_and_password_fields(
    client: Client, db: None
) -> None:
    # when
    response = client.get(LOGIN)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert '<input type="password" name="password"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'action="{LOGIN}"' in html
    assert logged_in_as(client) is None


def test_urls_are_where_the_pages_link_to() -> None:
    # then
    assert reverse("accounts:login") == LOGIN
    assert reverse("accounts:logout") == LOGOUT


def test_login_with_the_right_password_redirects_home(
    client: Client, annotator: User
) -> None:
    # when
    response = client.post(LOGIN, {"username": "anna", "password": PASSWORD})

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert logged_in_as(client) == str(annotator.pk)
    annotator.refresh_from_db()
    assert annotator.last_login is not None


def test_login_follows_a_safe_next_url(client: Client, lead: User) -> None:
    # when
    response = client.post(
        LOGIN, {"username": "lena", "password": PASSWORD, "next": "/taxonomy/"}
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == "/taxonomy/"


def test_login_ignores_a_next_url_on_another_host(client: Client, lead: User) -> None:
    # when
    response = client.post(
        LOGIN,
        {"username": "lena", "password": PASSWORD, "next": "https://evil.example/"},
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_login_with_a_wrong_password_shows_an_error_and_stays_logged_out(
    client: Client, annotator: User
) -> None:
    # when
    response = client.post(LOGIN, {"username": "anna", "password": "wrong"})

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password." in html
    assert logged_in_as(client) is None
    annotator.refresh_from_db()
    assert annotator.last_login is None
    assert client.get(reverse("home")).status_code == 302


def test_an_inactive_imported_rater_cannot_log_in(client: Client, db: None) -> None:
    # given
    UserFactory(username="slot3", is_active=False, imported_from="aegis1")

    # when
    response = client.post(LOGIN, {"username": "slot3", "password": PASSWORD})

    # then
    assert response.status_code == 200
    assert logged_in_as(client) is None


def test_a_logged_in_user_is_sent_on_from_the_login_page(
    annotator_client: Client,
) -> None:
    # when
    response = annotator_client.get(LOGIN)

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_logout_by_post_logs_out(annotator_client: Client) -> None:
    # when
    response = annotator_client.post(LOGOUT)

    # then
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert logged_in_as(annotator_client) is None
    again = annotator_client.get(reverse("home"))
    assert again.status_code == 302
    assert again["Location"] == f"{LOGIN}?next=/"


def test_logout_by_get_is_refused_and_keeps_the_session(
    annotator_client: Client, annotator: User
) -> None:
    # when
    response = annotator_client.get(LOGOUT)

    # then
    assert response.status_code == 405
    assert logged_in_as(annotator_client) == str(annotator.pk)


def test_every_page_offers_logout_as_a_post_form(annotator_client: Client) -> None:
    # when (home sends an annotator on to the content warning)
    response = annotator_client.get(reverse("home"), follow=True)

    # then
    assert response.redirect_chain[-1] == ("/work/consent/", 302)
    assert f'<form method="post" action="{LOGOUT}">' in response.content.decode()


# --- roles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "superuser", "is_lead", "is_admin_role"),
    [
        (Role.ANNOTATOR, False, False, False),
        (Role.LEAD, False, True, False),
        (Role.ADMIN, False, True, True),
        (Role.ANNOTATOR, True, True, True),
    ],
)
def test_role_flags(
    role: str, superuser: bool, is_lead: bool, is_admin_role: bool
) -> None:
    # given
    user = User(username="x", role=role, is_superuser=superuser)

    # then
    assert (user.is_lead, user.is_admin_role) == (is_lead, is_admin_role)


def test_a_new_user_is_an_annotator(db: None) -> None:
    # when
    user = User.objects.create_user(username="new", password="pw-123456789")

    # then
    assert user.role == Role.ANNOTATOR
    assert user.is_lead is False


def test_the_role_querysets(annotator: User, lead: User, admin_user: User) -> None:
    # then
    assert list(User.objects.annotators()) == [annotator]
    assert list(User.objects.leads()) == [lead, admin_user]


def test_lead_pages_give_403_to_annotators(annotator_client: Client) -> None:
    for url in ["/batches/", "/imports/", "/imports/new/", "/taxonomy/"]:
        # when
        response = annotator_client.get(url)

        # then
        assert response.status_code == 403, url


def test_lead_pages_open_for_leads_and_admins(
    client: Client, lead: User, admin_user: User
) -> None:
    for user in (lead, admin_user):
        # given
        login(client, user)

        # when / then
        for url in ["/batches/", "/imports/", "/imports/new/", "/taxonomy/"]:
            assert client.get(url).status_code == 200, (user.username, url)


def test_lead_pages_send_anonymous_users_to_login(client: Client, db: None) -> None:
    for url in ["/batches/", "/imports/", "/taxonomy/"]:
        # when
        response = client.get(url)

        # then
        assert response.status_code == 302
        assert response["Location"] == f"{LOGIN}?next={url}"


def test_the_lead_only_api_refuses_annotators_and_anonymous_users(
    client: Client, annotator: User
) -> None:
    # when
    anonymous = client.get("/api/v1/imports/1")
    login(client, annotator)
    as_annotator = client.get("/api/v1/imports/1")

    # then
    assert anonymous.status_code == 401
    assert as_annotator.status_code == 403
    assert as_annotator.json() == {
        "detail": "Only leads and admins may do this.",
        "code": "permission_denied",
    }


def test_the_lead_only_api_lets_a_lead_through(lead_client: Client) -> None:
    # when
    response = lead_client.get("/api/v1/imports/999999")

    # then: past the permission check, to the lookup
    assert response.status_code == 404
    assert response.json() == {"detail": "No such import.", "code": "not_found"}


# --- Django admin --------------------------------------------------------------------


def test_the_admin_role_user_reaches_the_django_admin(
    client: Client, admin_user: User
) -> None:
    # given
    assert admin_user.is_staff is True
    login(client, admin_user)

    # when
    index = client.get("/admin/")
    users = client.get("/admin/accounts/user/")

    # then
    assert index.status_code == 200
    assert users.status_code == 200
    assert "root" in users.content.decode()


def test_a_lead_does_not_reach_the_django_admin(lead_client: Client) -> None:
    # when
    response = lead_client.get("/admin/")

    # then
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    assert lead_client.get("/admin/accounts/user/").status_code == 302


def test_only_admins_see_the_admin_link(
    client: Client, lead: User, admin_user: User
) -> None:
    # when
    as_lead = login(client, lead).get("/taxonomy/").content.decode()
    as_admin = login(client, admin_user).get("/taxonomy/").content.decode()

    # then
    assert 'href="/admin/"' not in as_lead
    assert 'href="/admin/"' in as_admin
