"""Turning an API client's image reference into an Upload.

Accepted, in this order:
- `glimpse://uploads/<uuid>`: an image uploaded earlier with POST /v1/uploads (owner only);
- `https://...`: fetched by assistant.safety.fetch under the server's fetch policy,
  narrowed by the key's own domain allowlist when it has one;
- `data:image/<type>;base64,<data>`;
- bare base64 image data.
Every image then goes through the same sanitising as a chat-page upload (upload_create).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from django.conf import settings
from django.http import Http404

from assistant.models import Upload
from assistant.selectors import upload_access

from .errors import ApiError

UPLOAD_SCHEME = "glimpse://uploads/"
_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

NOT_AN_IMAGE_REFERENCE = (
    "image_url must be an https:// URL, a data:image/...;base64, URL, base64 image data, "
    "or glimpse://uploads/<id> for an image uploaded with POST /v1/uploads."
)


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Either an existing upload or new bytes to upload."""

    upload: Upload | None = None
    data: bytes | None = None


def upload_reference(upload: Upload) -> str:
    return f"{UPLOAD_SCHEME}{upload.pk}"


def image_source(reference: str, *, api_key) -> ImageSource:
    """Resolve an image reference to an upload or raw bytes. Raises ApiError."""
    if not isinstance(reference, str) or not reference.strip():
        raise ApiError(400, NOT_AN_IMAGE_REFERENCE, "invalid_image_url")
    reference = reference.strip()
    if reference.startswith(UPLOAD_SCHEME):
        return ImageSource(upload=upload_by_id(reference[len(UPLOAD_SCHEME) :], api_key=api_key))
    if reference[:5].lower() == "data:":
        return ImageSource(data=_decode_data_url(reference))
    if _URL_LIKE.match(reference):
        scheme = reference.split(":", 1)[0].lower()
        if scheme not in ("https", "http"):
            raise ApiError(400, NOT_AN_IMAGE_REFERENCE, "invalid_image_url")
        return ImageSource(data=_fetch(reference, api_key=api_key))
    return ImageSource(data=_decode_base64(reference, NOT_AN_IMAGE_REFERENCE))


def upload_by_id(upload_id: str, *, api_key) -> Upload:
    try:
        return upload_access(user=api_key.user, upload_id=upload_id)
    except Http404:
        raise ApiError(404, f"No such upload: {upload_id}.", "upload_not_found") from None


def _decode_data_url(reference: str) -> bytes:
    match = _DATA_URL.match(reference)
    if match is None:
        raise ApiError(400, "The data URL is malformed.", "invalid_data_url")
    media_type = match["type"].strip().lower()
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    if not media_type.startswith("image/"):
        raise ApiError(400, "A data URL must hold an image (data:image/...).", "invalid_data_url")
    if "base64" not in params:
        raise ApiError(
            400, "Image data URLs must be base64 encoded (data:image/png;base64,...).",
            "invalid_data_url",
        )  # fmt: skip
    return _decode_base64(match["data"], "The data URL's base64 data is not valid.")


def _decode_base64(text: str, message: str) -> bytes:
    compact = _WHITESPACE.sub("", text)
    # Refuse before decoding: 4 characters make 3 bytes (padding makes none, so an image
    # of exactly UPLOAD_MAX_BYTES is not refused for its trailing "=").
    if len(compact.rstrip("=")) * 3 // 4 > settings.UPLOAD_MAX_BYTES:
        raise _too_large()
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")  # the URL-safe alphabet
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, message, "invalid_base64") from None
    if not data:
        raise ApiError(400, message, "invalid_base64")
    return data


def _too_large() -> ApiError:
    limit = settings.UPLOAD_MAX_BYTES // (1024 * 1024)
    return ApiError(413, f"The image is larger than {limit} MB.", "too_large")


# --- URLs -----------------------------------------------------------------------------------


def key_fetch_policy(api_key):
    """The server's fetch policy for this key, narrowed to the key's own allowlist."""
    from assistant.safety.fetch import policy_for

    policy = policy_for(user=api_key.user, api_key=api_key)
    own = tuple(api_key.allowed_image_domains or ())
    if not own:
        return policy
    narrowed = tuple(rule for rule in own if rule_within(rule, policy.allowed_domains))
    # Every key rule outside the server policy is dropped; if none is left the fetch is
    # refused as "domain not allowed", as it should be.
    return dataclasses.replace(policy, allowed_domains=narrowed or ("invalid.invalid",))


def rule_within(rule: str, server_rules: tuple[str, ...]) -> bool:
    """True when every host `rule` admits is admitted by `server_rules` too."""
    from assistant.safety.fetch import host_allowed, normalise_rule

    parsed = normalise_rule(rule)
    if parsed is None:
        return False
    kind, domain = parsed
    exact_ok = host_allowed(domain, server_rules)
    subdomains_ok = False
    for server_rule in server_rules:
        server = normalise_rule(server_rule)
        if server is None or server[0] == "exact":
            continue
        if domain == server[1] or domain.endswith("." + server[1]):
            subdomains_ok = True
            break
    if kind == "exact":
        return exact_ok
    if kind == "sub":
        return subdomains_ok
    return exact_ok and subdomains_ok


def _fetch(url: str, *, api_key) -> bytes:
    from assistant.safety.fetch import FetchRefused, fetch_image
    from assistant.safety.pipeline import url_refused_record

    policy = key_fetch_policy(api_key)
    policy = dataclasses.replace(policy, max_bytes=min(policy.max_bytes, settings.UPLOAD_MAX_BYTES))
    try:
        return fetch_image(url, policy=policy)
    except FetchRefused as exc:
        # On the record (reason and host only: the path and query may hold tokens), so
        # probing for internal addresses or other domains leaves a trace.
        url_refused_record(
            actor=api_key.user,
            api_key=api_key,
            url=url,
            code=exc.code,
            status=exc.status,
            refused_url=exc.url,
        )
        raise ApiError(exc.status, exc.message, exc.code) from None
