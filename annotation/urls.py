"""The annotation app's pages, one URL module per subdomain."""

from django.urls import include, path

app_name = "annotation"

urlpatterns = [
    # Before the batch pages: "batches/new/" is not a batch name.
    path("", include("annotation.batches.urls")),
    path("", include("annotation.review.urls")),
    path("", include("annotation.agreement.urls")),
    path("", include("annotation.adjudication.urls")),
    path("", include("annotation.other.urls")),
    path("", include("annotation.export.urls")),
    path("", include("annotation.imports.urls")),
    path("", include("annotation.labelling.urls")),
]
