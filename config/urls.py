from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from annotation import api as annotation_api
from annotation import views as annotation_views

api_v1 = [
    path("batches", annotation_api.BatchListView.as_view(), name="batches"),
    path("imports", annotation_api.ImportCreateView.as_view(), name="import-create"),
    path(
        "imports/<int:pk>",
        annotation_api.ImportDetailView.as_view(),
        name="import-detail",
    ),
]

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("", include("annotation.urls")),
    path("taxonomy/", include("taxonomy.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]
