"""The app has an icon wherever a browser looks for one."""

from django.test import Client

from accounts.models import User


def test_the_site_root_serves_the_icons_browsers_ask_for(client: Client) -> None:
    ico = client.get("/favicon.ico")
    touch = client.get("/apple-touch-icon.png")

    assert ico.status_code == 200
    assert ico["Content-Type"] == "image/x-icon"
    assert b"".join(ico.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert touch.status_code == 200
    assert b"".join(touch.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_app_pages_and_the_admin_link_the_icon(
    client: Client, admin_user: User
) -> None:
    client.force_login(admin_user)

    login = Client().get("/accounts/login/").content.decode()
    admin = client.get("/admin/").content.decode()

    assert 'rel="icon" href="/static/favicon.svg" type="image/svg+xml"' in login
    assert 'rel="icon" href="/favicon.ico"' in login
    assert 'rel="icon" href="/static/favicon.svg" type="image/svg+xml"' in admin
    assert admin.count('rel="icon"') == 1
