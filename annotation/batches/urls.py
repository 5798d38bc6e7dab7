"""The leads' batch pages: the list, one batch and its dialogues, create, settings,
assign, progress."""

from django.urls import path

from annotation.batches import views as lead_views

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
    path("batches/", lead_views.batch_list, name="batch_list"),
    path("batches/<str:name>/", lead_views.batch_detail, name="batch_detail"),
    path(
        "batches/<str:name>/dialogues/<int:pk>/",
        lead_views.dialogue_detail,
        name="dialogue_detail",
    ),
]
