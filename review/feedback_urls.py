"""The chat page's feedback endpoints, mounted at the site root (see glimpse/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("messages/<int:message_id>/feedback/", views.feedback, name="answer_feedback"),
    path(
        "conversations/<int:conversation_id>/feedback/",
        views.feedback_list,
        name="conversation_feedback",
    ),
]
