from django.urls import path

from . import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("items/<int:item_id>/resolve/", views.item_resolve, name="resolve"),
    path("items/<int:item_id>/uploads/<uuid:upload_id>/image", views.item_image, name="image"),
    path("export.jsonl", views.export, name="export"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard.json", views.dashboard_json, name="dashboard_json"),
]
