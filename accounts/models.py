from django.conf import settings
from django.db import models

# What a key may be limited to. A key with no scopes may do everything its user may.
API_SCOPES = {
    "chat": "ask questions: POST /v1/chat and /v1/chat/completions",
    "conversations": "list, read and delete conversations and their messages",
    "uploads": "upload, list, read and delete images",
}


class ApiKey(models.Model):
    """A partner API key. Only a hash is stored; the raw key is shown once at creation.

    Raw keys look like `glk_<prefix>_<secret>`: the prefix is public (it identifies the
    key in lists and logs), the secret carries 256 bits of randomness, which is why a
    fast SHA-256 is enough here where passwords need a slow hash.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Image URLs this key may fetch. Empty: whatever the server's fetch policy allows;
    # otherwise only these domains, and only where the server allows them too (a key
    # can narrow the policy, never widen it). Same syntax as IMAGE_URL_ALLOWED_DOMAINS.
    allowed_image_domains = models.JSONField(default=list, blank=True)
    # Per-key limits; empty means the site default (API_KEY_* settings).
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    daily_request_quota = models.PositiveIntegerField(null=True, blank=True)
    daily_token_quota = models.PositiveBigIntegerField(null=True, blank=True)
    max_concurrent_generations = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"glk_{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return not self.scopes or scope in self.scopes
