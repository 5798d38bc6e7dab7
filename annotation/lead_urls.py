"""URLs of the leads' batch management pages (create, settings, assign, progress)."""

from django.urls import path

from annotation import lead_views

# Included before the batch detail route, so "batches/new/" is not a batch name.
urlpatterns = [
    path("batches/new/", lead_views.batch_new, name="batch_new"),
    path(
        "batches/<str:name>/settings/",
        lead_views.batch_settings,
        name="batch_settings",
    ),
    path("batches/<str:name>/status/", lead_views.batch_status, name="batch_status"),
    path("batches/<str:name>/assign/", lead_views.batch_assign, name="batch_assign"),
    path(
        "batches/<str:name>/progress/",
        lead_views.batch_progress_page,
        name="batch_progress",
    ),
    path(
        "batches/<str:name>/flags/<int:pk>/resolve/",
        lead_views.flag_resolve,
        name="flag_resolve",
    ),
]
