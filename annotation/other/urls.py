"""URLs of the leads' Other page (standardising the free texts given with Other)."""

from django.urls import path

from annotation.other import views as other_views

urlpatterns = [
    path("other/", other_views.other_groups_page, name="other_groups"),
    path("other/map/", other_views.other_map, name="other_map"),
]
