"""URLs of the leads' adjudication pages: the queue, one dialogue, reopening, and the
bulk acceptance of a batch's unanimous dialogues."""

from django.urls import path

from annotation.adjudication import views as adjudication_views

urlpatterns = [
    path("adjudication/", adjudication_views.queue, name="adjudication_queue"),
    path(
        "adjudication/<int:dialogue_id>/",
        adjudication_views.adjudicate_page,
        name="adjudicate",
    ),
    path(
        "adjudication/<int:dialogue_id>/reopen/",
        adjudication_views.reopen_page,
        name="adjudication_reopen",
    ),
    path(
        "adjudication/batches/<str:name>/accept-unanimous/",
        adjudication_views.accept_unanimous_page,
        name="accept_unanimous",
    ),
]
