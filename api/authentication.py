"""API key authentication: `Authorization: Bearer glk_...`, nowhere else.

A key in the query string is refused outright, even next to a valid header: URLs end up
in proxy logs, browser history and Referer headers, so such a key should be treated as
leaked and the client told so.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.keys import KEY_PREFIX, hash_key
from accounts.models import ApiKey
from accounts.services import api_key_authenticate

from .errors import ApiError

# Query parameter names that clients commonly use for credentials.
_CREDENTIAL_PARAMS = {"api_key", "apikey", "key", "access_token", "token", "authorization"}


def refuse_key_in_query(request) -> None:
    for name, values in request.GET.lists():
        if name.lower() in _CREDENTIAL_PARAMS or any(v.startswith(KEY_PREFIX) for v in values):
            raise ApiError(
                400,
                "API keys are accepted only in the Authorization header "
                "(Authorization: Bearer <key>), never in the URL. A key sent in a URL "
                "may have been logged on the way: revoke it and create a new one.",
                "api_key_in_query",
            )


def _unauthenticated(message: str, code: str) -> ApiError:
    return ApiError(401, message, code, headers={"WWW-Authenticate": 'Bearer realm="api"'})


def authenticate_bearer(request) -> ApiKey:
    """The active ApiKey for this request, or ApiError 400/401. Records last use."""
    refuse_key_in_query(request)
    header = get_authorization_header(request).decode("latin-1").strip()
    if not header:
        raise _unauthenticated(
            "Send your API key in the Authorization header: Authorization: Bearer <key>.",
            "missing_api_key",
        )
    scheme, _, raw_key = header.partition(" ")
    raw_key = raw_key.strip()
    if scheme.lower() != "bearer" or not raw_key:
        raise _unauthenticated(
            "The Authorization header must be 'Bearer <key>'.", "invalid_authorization_header"
        )
    api_key = api_key_authenticate(raw_key)
    if api_key is not None:
        return api_key
    # Telling the holder of a revoked key why it stopped working saves them a support
    # ticket; it needs the full key, so it reveals nothing to anyone else.
    if ApiKey.objects.filter(key_hash=hash_key(raw_key)).exclude(revoked_at=None).exists():
        raise _unauthenticated("This API key has been revoked.", "revoked_api_key")
    raise _unauthenticated("The API key is not valid.", "invalid_api_key")


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication: request.user is the key's owner, request.auth the ApiKey."""

    def authenticate(self, request):
        api_key = authenticate_bearer(request)
        return api_key.user, api_key

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Bearer realm="api"'
