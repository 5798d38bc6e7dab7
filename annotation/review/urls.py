"""The leads' checks on a batch's labels: audits and gold items."""

from django.urls import path

from annotation.review.audits import views as audit_views
from annotation.review.gold import views as gold_views

urlpatterns = [
    path("batches/<str:name>/audits/", audit_views.audit_list, name="audit_list"),
    path(
        "batches/<str:name>/audits/<int:pk>/",
        audit_views.audit_detail,
        name="audit_detail",
    ),
    path(
        "batches/<str:name>/audits/<int:pk>/<int:position>/",
        audit_views.audit_item,
        name="audit_item",
    ),
    path(
        "batches/<str:name>/audits/<int:pk>/<int:position>/review/",
        audit_views.audit_item_review,
        name="audit_item_review",
    ),
    path(
        "batches/<str:name>/audits/<int:pk>/<int:position>/gold/",
        audit_views.audit_item_gold,
        name="audit_item_gold",
    ),
    path(
        "batches/<str:name>/audits/<int:pk>/<int:position>/votes/<int:label_id>/",
        audit_views.audit_feedback,
        name="audit_feedback",
    ),
    path("batches/<str:name>/gold/", gold_views.gold_page, name="gold"),
    path(
        "batches/<str:name>/dialogues/<int:pk>/gold/",
        gold_views.gold_mark,
        name="gold_mark",
    ),
    path(
        "batches/<str:name>/dialogues/<int:pk>/gold/remove/",
        gold_views.gold_unmark,
        name="gold_unmark",
    ),
]
