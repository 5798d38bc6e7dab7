"""URLs of the leads' agreement dashboard (its JSON is also at /api/v1/batches/<name>/
agreement)."""

from django.urls import path

from annotation.agreement import views as agreement_views

urlpatterns = [
    path(
        "batches/<str:name>/agreement/",
        agreement_views.agreement_page,
        name="batch_agreement",
    ),
    path(
        "batches/<str:name>/agreement/recompute/",
        agreement_views.agreement_recompute,
        name="batch_agreement_recompute",
    ),
]
