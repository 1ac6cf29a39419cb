from django.urls import path

from . import views

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<int:conversation_id>/", views.chat, name="conversation"),
    path("conversations/", views.conversation_create, name="conversation_create"),
    path(
        "conversations/<int:conversation_id>/delete/",
        views.conversation_delete,
        name="conversation_delete",
    ),
    path(
        "conversations/<int:conversation_id>/messages/",
        views.conversation_messages_view,
        name="conversation_messages",
    ),
    path("uploads/", views.upload_create, name="upload_create"),
    path("uploads/<uuid:upload_id>/image", views.upload_image, name="upload_image"),
]
