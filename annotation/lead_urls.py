"""URLs of the leads' batch management pages (create, settings, assign, progress,
audits, gold items)."""

from django.urls import path

from annotation import audit_views, gold_views, lead_views

# Included before the batch detail route, so "batches/new/" is not a batch name.
urlpatterns = [
    path("batches/new/", lead_views.batch_new, name="batch_new"),
    path(
        "batches/<str:name>/settings/",
        lead_views.batch_settings,
        name="batch_settings",
    ),
    path("batches/<str:name>/status/", lead_views.batch_status, name="batch_status"),
    path("batches/<str:name>/assign/", lead_views.batch_assign, name="batch_assign"),
    path(
        "batches/<str:name>/progress/",
        lead_views.batch_progress_page,
        name="batch_progress",
    ),
    path(
        "batches/<str:name>/flags/<int:pk>/resolve/",
        lead_views.flag_resolve,
        name="flag_resolve",
    ),
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
