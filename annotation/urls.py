from django.urls import include, path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", include("annotation.lead_urls")),
    path("batches/", views.batch_list, name="batch_list"),
    path("batches/<str:name>/", views.batch_detail, name="batch_detail"),
    path(
        "batches/<str:name>/dialogues/<int:pk>/",
        views.dialogue_detail,
        name="dialogue_detail",
    ),
    path("imports/", views.import_list, name="import_list"),
    path("imports/new/", views.import_new, name="import_new"),
    path("imports/<int:pk>/", views.import_detail, name="import_detail"),
]
