"""The annotator's pages: labelling, history, preferences, feedback."""

from django.urls import path

from annotation.labelling import views

urlpatterns = [
    path("work/", views.workspace, name="workspace"),
    path("work/consent/", views.consent, name="consent"),
    path("work/undo/", views.undo, name="undo"),
    path("work/history/", views.history, name="history"),
    path("work/preferences/", views.preferences, name="preferences"),
    path("work/feedback/", views.feedback, name="feedback"),
    path("work/feedback/read/", views.feedback_read, name="feedback_read"),
    path("work/labels/<int:pk>/", views.edit, name="edit_label"),
    path("work/<int:dialogue_id>/submit/", views.submit, name="submit"),
    path("work/<int:dialogue_id>/skip/", views.skip, name="skip"),
    path("work/<int:dialogue_id>/flag/", views.flag, name="flag"),
]
