from django.urls import path

from taxonomy import views

app_name = "taxonomy"

urlpatterns = [
    path("", views.taxonomy_list, name="list"),
    path("<int:pk>/", views.taxonomy_detail, name="detail"),
    path("<int:pk>/clone/", views.taxonomy_clone, name="clone"),
    path("<int:pk>/publish/", views.taxonomy_publish, name="publish"),
    path("<int:pk>/categories/", views.taxonomy_add_category, name="add_category"),
]
