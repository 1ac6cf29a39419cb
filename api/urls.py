from django.urls import path

from .views import catalog, chat, completions, docs, resources

urlpatterns = [
    path("v1/chat", chat.ChatView.as_view(), name="api_chat"),
    path("v1/chat/completions", completions.ChatCompletionsView.as_view(), name="api_completions"),
    path("v1/models", catalog.ModelListView.as_view(), name="api_models"),
    path("v1/models/<path:model_id>", catalog.ModelDetailView.as_view(), name="api_model"),
    path("v1/conversations", resources.ConversationListView.as_view(), name="api_conversations"),
    path(
        "v1/conversations/<int:conversation_id>",
        resources.ConversationDetailView.as_view(),
        name="api_conversation",
    ),
    path(
        "v1/conversations/<int:conversation_id>/messages",
        resources.MessageListView.as_view(),
        name="api_messages",
    ),
    path(
        "v1/conversations/<int:conversation_id>/messages/<int:message_id>",
        resources.MessageDetailView.as_view(),
        name="api_message",
    ),
    path("v1/uploads", resources.UploadListView.as_view(), name="api_uploads"),
    path("v1/uploads/<uuid:upload_id>", resources.UploadDetailView.as_view(), name="api_upload"),
    path(
        "v1/uploads/<uuid:upload_id>/content",
        resources.UploadContentView.as_view(),
        name="api_upload_content",
    ),
    path("api/schema/", docs.SchemaView.as_view(), name="api_schema"),
    path("api/docs/", docs.DocsView.as_view(), name="api_docs"),
]
