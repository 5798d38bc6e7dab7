"""Generation pages, included by `jury.urls` under generation/ (names in `jury:`)."""

from django.urls import path

from jury.generation import views as generation_views

urlpatterns = [
    path("", generation_views.generation_list, name="generation_list"),
    path("new/", generation_views.generation_new, name="generation_new"),
    path("<int:pk>/", generation_views.generation_detail, name="generation_detail"),
    path(
        "<int:pk>/cancel/",
        generation_views.generation_cancel,
        name="generation_cancel",
    ),
    path(
        "<int:pk>/resume/",
        generation_views.generation_resume,
        name="generation_resume",
    ),
]
