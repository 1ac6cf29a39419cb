"""OpenAPI pieces drf-spectacular cannot infer: the Bearer key security scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "glk_<prefix>_<secret>",
            "description": "An API key from /accounts/keys/, as `Authorization: Bearer <key>`.",
        }
