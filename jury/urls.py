from django.urls import include, path

from jury.runs import views

app_name = "jury"

urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("judges/", views.judge_list, name="judge_list"),
    path("runs/new/", views.run_new, name="run_new"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/resume/", views.run_resume, name="run_resume"),
    path("generation/", include("jury.generation.urls")),
]
