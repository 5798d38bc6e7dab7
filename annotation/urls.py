from django.urls import include, path

from annotation import views, work_views

app_name = "annotation"

urlpatterns = [
    path("", include("annotation.lead_urls")),
    path("", include("annotation.agreement_urls")),
    path("", include("annotation.adjudication_urls")),
    path("", include("annotation.other_urls")),
    path("", include("annotation.export_urls")),
    path("batches/", views.batch_list, name="batch_list"),
    path("batches/<str:name>/", views.batch_detail, name="batch_detail"),
    path(
        "batches/<str:name>/dialogues/<int:pk>/",
        views.dialogue_detail,
        name="dialogue_detail",
    ),
    path("work/", work_views.workspace, name="workspace"),
    path("work/consent/", work_views.consent, name="consent"),
    path("work/undo/", work_views.undo, name="undo"),
    path("work/history/", work_views.history, name="history"),
    path("work/preferences/", work_views.preferences, name="preferences"),
    path("work/feedback/", work_views.feedback, name="feedback"),
    path("work/feedback/read/", work_views.feedback_read, name="feedback_read"),
    path("work/labels/<int:pk>/", work_views.edit, name="edit_label"),
    path("work/<int:dialogue_id>/submit/", work_views.submit, name="submit"),
    path("work/<int:dialogue_id>/skip/", work_views.skip, name="skip"),
    path("work/<int:dialogue_id>/flag/", work_views.flag, name="flag"),
    path("imports/", views.import_list, name="import_list"),
    path("imports/new/", views.import_new, name="import_new"),
    path("imports/<int:pk>/", views.import_detail, name="import_detail"),
]
