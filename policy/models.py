"""Rules operators edit in the admin: which domains image URLs may come from, and which
moderation terms to add to, or override in, the built-in lists."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class ImageUrlRule(models.Model):
    """One allowed domain for image URLs, for the whole deployment, one API key, or the
    members of one user group. Rules only ever add to IMAGE_URL_ALLOWED_DOMAINS."""

    class Scope(models.TextChoices):
        DEPLOYMENT = "deployment"
        API_KEY = "api_key", "API key"
        GROUP = "group", "User group"

    domain = models.CharField(
        max_length=260,
        help_text='"example.com" exactly; "*.example.com" its subdomains only; '
        '".example.com" the domain and its subdomains.',
    )
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.DEPLOYMENT)
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scope", "domain"]
        constraints = [
            models.CheckConstraint(
                name="image_url_rule_scope_matches_target",
                condition=(
                    models.Q(scope="deployment", api_key__isnull=True, group__isnull=True)
                    | models.Q(scope="api_key", api_key__isnull=False, group__isnull=True)
                    | models.Q(scope="group", api_key__isnull=True, group__isnull=False)
                ),
            )
        ]

    def __str__(self):
        return f"{self.domain} ({self.scope})"

    def clean(self):
        from assistant.safety.fetch import normalise_rule

        self.domain = self.domain.strip().lower()
        if normalise_rule(self.domain) is None:
            raise ValidationError({"domain": "Enter a domain name such as images.example.com."})
        wanted = {
            self.Scope.DEPLOYMENT: (False, False),
            self.Scope.API_KEY: (True, False),
            self.Scope.GROUP: (False, True),
        }[self.scope]
        if (self.api_key_id is not None, self.group_id is not None) != wanted:
            raise ValidationError(
                "Pick an API key for API-key rules, a group for group rules, and neither "
                "for deployment rules."
            )


class ModerationTerm(models.Model):
    """A term for the built-in term checker. A row whose term matches a built-in one
    overrides it (its category and action); action "allow" switches a built-in term off."""

    class Action(models.TextChoices):
        BLOCK = "block"
        FLAG = "flag"
        ALLOW = "allow", "allow (switch off)"

    term = models.CharField(
        max_length=100,
        help_text="Matched case-insensitively after Unicode normalisation; English terms "
        "match whole words, Chinese terms match anywhere (spaces between characters ignored).",
    )
    category = models.CharField(max_length=40, default="custom")
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.BLOCK)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["category", "term"]

    def __str__(self):
        return f"{self.term} → {self.action} ({self.category})"

    def clean(self):
        from assistant.safety.moderation import normalise_term

        if not normalise_term(self.term):
            raise ValidationError({"term": "Enter at least one letter or character."})
        if not self.category.replace("_", "").isalnum():
            raise ValidationError({"category": "Use letters, digits and underscores."})
