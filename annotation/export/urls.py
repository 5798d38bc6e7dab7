"""URLs of the exports pages (snapshots of training data, DESIGN section 6)."""

from django.urls import path

from annotation.export import views as export_views

urlpatterns = [
    path("exports/", export_views.export_list, name="export_list"),
    path("exports/new/", export_views.export_new, name="export_new"),
    path("exports/<int:pk>/", export_views.export_detail, name="export_detail"),
    path(
        "exports/<int:pk>/download/",
        export_views.export_download,
        name="export_download",
    ),
]
