from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from annotation import views as annotation_views
from annotation.adjudication import api as api_adjudication
from annotation.agreement import api as api_agreement
from annotation.batches import api as api_batches
from annotation.export import api as api_export
from annotation.imports import api as api_imports
from annotation.labelling import api as api_work
from config import error_pages

api_v1 = [
    path("batches", api_batches.BatchListView.as_view(), name="batches"),
    path(
        "batches/<str:name>/agreement",
        api_agreement.AgreementView.as_view(),
        name="batch-agreement",
    ),
    path("imports", api_imports.ImportCreateView.as_view(), name="import-create"),
    path(
        "imports/<int:pk>",
        api_imports.ImportDetailView.as_view(),
        name="import-detail",
    ),
    path("exports", api_export.ExportListView.as_view(), name="exports"),
    path(
        "exports/<int:pk>",
        api_export.ExportDetailView.as_view(),
        name="export-detail",
    ),
    path(
        "exports/<int:pk>/download",
        api_export.ExportDownloadView.as_view(),
        name="export-download",
    ),
    path("consent", api_work.ConsentView.as_view(), name="consent"),
    path("queue/next", api_work.QueueNextView.as_view(), name="queue-next"),
    path("queue/skip", api_work.SkipView.as_view(), name="queue-skip"),
    path("flags", api_work.FlagView.as_view(), name="flags"),
    path("labels", api_work.LabelListCreateView.as_view(), name="labels"),
    path("labels/<int:pk>", api_work.LabelEditView.as_view(), name="label-edit"),
    path("me/progress", api_work.ProgressView.as_view(), name="my-progress"),
    path(
        "adjudication",
        api_adjudication.QueueView.as_view(),
        name="adjudication-queue",
    ),
    path(
        "adjudication/<int:dialogue_id>",
        api_adjudication.CaseView.as_view(),
        name="adjudication-case",
    ),
    path(
        "adjudication/<int:dialogue_id>/reopen",
        api_adjudication.ReopenView.as_view(),
        name="adjudication-reopen",
    ),
    path(
        "batches/<str:name>/accept-unanimous",
        api_adjudication.AcceptUnanimousView.as_view(),
        name="batch-accept-unanimous",
    ),
]

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("", include("annotation.urls")),
    path("taxonomy/", include("taxonomy.urls")),
    path("jury/", include("jury.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]

# With DEBUG off Django calls these; ErrorPagesMiddleware renders the same pages with
# DEBUG on.
handler403 = error_pages.permission_denied
handler404 = error_pages.page_not_found
handler500 = error_pages.server_error
