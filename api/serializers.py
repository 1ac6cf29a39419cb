"""Request validation and the documented shapes of responses (drf-spectacular reads
these to build the OpenAPI schema)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from assistant.models import Conversation, Message, Upload
from inference.types import MAX_NEW_TOKENS_LIMIT

from .images import upload_reference

# --- shared pieces -----------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text="Category, e.g. invalid_request_error, rate_limit_error."
    )
    message = serializers.CharField(help_text="Fit to show to a person.")
    code = serializers.CharField(help_text="Stable machine-readable code.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class BoxSerializer(serializers.Serializer):
    x1 = serializers.IntegerField()
    y1 = serializers.IntegerField()
    x2 = serializers.IntegerField()
    y2 = serializers.IntegerField()
    label = serializers.CharField(allow_blank=True)


class NullMeansOmittedMixin:
    # An explicit JSON null for an optional field counts as "not given": OpenAI-style
    # clients send `"stop": null`, `"temperature": null`, ... for parameters they pass as
    # None. Required fields still refuse null. (A comment, not a docstring: drf-spectacular
    # would take a docstring as the description of every serializer using this.)
    # Optional fields are declared allow_null=True so the schema says null is accepted.

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = {
                name: value
                for name, value in data.items()
                if not (value is None and name in self.fields and not self.fields[name].required)
            }
        return super().to_internal_value(data)


class ClampedIntegerField(serializers.IntegerField):
    """An integer at least `min_value`; values above `clamp_to` are lowered to it rather
    than refused (clients commonly default to limits larger than this server's)."""

    def __init__(self, *, clamp_to: int, **kwargs):
        self.clamp_to = clamp_to
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return min(super().to_internal_value(data), self.clamp_to)


class SamplingFieldsMixin(NullMeansOmittedMixin, serializers.Serializer):
    temperature = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=2.0
    )
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    stop = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text=(
            "A string or a list of up to 4 strings; the answer ends before the first one "
            "that it would contain."
        ),
    )
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)

    def validate_stop(self, value):
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or len(value) > 4
            or not all(isinstance(s, str) and s for s in value)
        ):
            raise serializers.ValidationError("Give a string or a list of up to 4 strings.")
        return value


def max_tokens_field(help_text: str = "Longest answer, in tokens.") -> ClampedIntegerField:
    return ClampedIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        clamp_to=MAX_NEW_TOKENS_LIMIT,
        help_text=f"{help_text} Values above {MAX_NEW_TOKENS_LIMIT} are lowered to it.",
    )


# --- POST /v1/chat -----------------------------------------------------------------------------


class ChatAskSerializer(SamplingFieldsMixin):
    prompt = serializers.CharField(trim_whitespace=True, help_text="The question.")
    image_url = serializers.CharField(
        required=False,
        allow_null=True,
        trim_whitespace=True,
        help_text=(
            "An https:// URL (fetched under the server's domain allowlist), a "
            "data:image/...;base64, URL, bare base64 image data, or "
            "glimpse://uploads/<id> for an image uploaded with POST /v1/uploads."
        ),
    )
    image_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="Id of an image uploaded with POST /v1/uploads."
    )
    conversation_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Continue this conversation (yours only).",
    )
    max_tokens = max_tokens_field()

    def validate(self, attrs):
        if attrs.get("image_url") and attrs.get("image_id"):
            raise serializers.ValidationError("Give image_url or image_id, not both.")
        return attrs


class ChatResponseSerializer(serializers.Serializer):
    response = serializers.CharField(help_text="The answer text (PII redacted).")
    conversation_id = serializers.IntegerField()
    message_id = serializers.IntegerField(help_text="Id of the stored answer message.")
    image_id = serializers.UUIDField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "abort"])
    usage = UsageSerializer()
    boxes = BoxSerializer(many=True, help_text="Grounding boxes, in pixels of the image.")


# --- POST /v1/chat/completions ----------------------------------------------------------------

_CONTENT_SCHEMA = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["text", "image_url"]},
                    "text": {"type": "string"},
                    "image_url": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                        "required": ["url"],
                    },
                },
                "required": ["type"],
            },
        },
    ]
}


@extend_schema_field(_CONTENT_SCHEMA)
class MessageContentField(serializers.JSONField):
    """A string, or a list of {"type": "text"} and {"type": "image_url"} parts."""


class CompletionMessageSerializer(NullMeansOmittedMixin, serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant"])
    content = MessageContentField(
        required=False,
        allow_null=True,
        help_text="Required, except that an assistant turn may have none (null).",
    )
    name = serializers.CharField(required=False, allow_null=True)

    def validate(self, attrs):
        if attrs.get("content") is None and attrs["role"] != "assistant":
            raise serializers.ValidationError({"content": "This field is required."})
        return attrs


class StreamOptionsSerializer(NullMeansOmittedMixin, serializers.Serializer):
    include_usage = serializers.BooleanField(required=False, allow_null=True, default=False)


class ChatCompletionCreateSerializer(SamplingFieldsMixin):
    model = serializers.CharField(help_text="A model id from GET /v1/models.")
    messages = CompletionMessageSerializer(many=True, allow_empty=False)
    max_tokens = max_tokens_field()
    max_completion_tokens = max_tokens_field(help_text="Preferred over max_tokens.")
    n = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=1, default=1
    )
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)

    # Accepted by OpenAI, not by us: refused clearly instead of silently ignored.
    UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "audio", "modalities")

    def validate(self, attrs):
        for name in self.UNSUPPORTED:
            if self.initial_data.get(name):
                raise serializers.ValidationError({name: "This parameter is not supported."})
        response_format = self.initial_data.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
            raise serializers.ValidationError(
                {"response_format": "Only the 'text' response format is supported."}
            )
        if self.initial_data.get("logprobs"):
            raise serializers.ValidationError({"logprobs": "Log probabilities are not supported."})
        return attrs


class CompletionChoiceMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()
    refusal = serializers.CharField(allow_null=True)


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = CompletionChoiceMessageSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class GlimpseExtrasSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    message_id = serializers.IntegerField()
    boxes = BoxSerializer(many=True)


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = CompletionChoiceSerializer(many=True)
    usage = UsageSerializer()
    system_fingerprint = serializers.CharField(allow_null=True)
    glimpse = GlimpseExtrasSerializer(help_text="Glimpse additions: where the answer is stored.")


# --- GET /v1/models ----------------------------------------------------------------------------


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ModelSerializer(many=True)


# --- resources ---------------------------------------------------------------------------------


class UploadSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField(
        help_text="Pass this as image_url (or the id as image_id) to ask about the image."
    )
    bytes = serializers.IntegerField(source="byte_size")

    class Meta:
        model = Upload
        fields = ["id", "image_url", "content_type", "width", "height", "bytes", "created_at"]

    def get_image_url(self, upload) -> str:
        return upload_reference(upload)


class UploadCreateSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="PNG, JPEG, WebP or GIF, at most UPLOAD_MAX_BYTES.")


class MessageSerializer(serializers.ModelSerializer):
    usage = serializers.SerializerMethodField()
    image_id = serializers.UUIDField(source="upload_id", allow_null=True)
    reply_to = serializers.IntegerField(source="reply_to_id", allow_null=True)
    conversation_id = serializers.IntegerField()

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "role",
            "text",
            "status",
            "error",
            "engine",
            "image_id",
            "reply_to",
            "boxes",
            "usage",
            "created_at",
            "finished_at",
        ]

    @extend_schema_field(UsageSerializer)
    def get_usage(self, message) -> dict:
        return {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "total_tokens": message.prompt_tokens + message.completion_tokens,
        }


class ConversationSerializer(serializers.ModelSerializer):
    source = serializers.SerializerMethodField(help_text="'api' or 'web': where it was started.")

    class Meta:
        model = Conversation
        fields = ["id", "title", "source", "created_at", "updated_at"]

    def get_source(self, conversation) -> str:
        return "api" if hasattr(conversation, "api_origin") else "web"
