"""URLs of the leads' batch management pages (create, settings, assign, progress)."""


urlpatterns: list = []
