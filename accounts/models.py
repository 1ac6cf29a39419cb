from django.conf import settings
from django.db import models


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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"glk_{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
