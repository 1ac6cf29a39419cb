"""The API options of a key on the key management page (/accounts/keys/)."""

from __future__ import annotations

import re

from django import forms

from accounts.models import API_SCOPES

MAX_DOMAINS = 20


class ApiKeyOptionsForm(forms.Form):
    scopes = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {meaning}") for name, meaning in API_SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: the key may do everything you may.",
    )
    allowed_image_domains = forms.CharField(
        required=False,
        label="Image domains",
        widget=forms.TextInput(attrs={"placeholder": "images.example.com, *.cdn.example.com"}),
        help_text=(
            "Optional: the only domains this key may fetch image URLs from (within what "
            "the server allows). 'a.com' exactly, '*.a.com' its subdomains, '.a.com' both."
        ),
    )

    def clean_allowed_image_domains(self) -> list[str]:
        from assistant.safety.fetch import normalise_rule

        entries = [e for e in re.split(r"[\s,]+", self.cleaned_data["allowed_image_domains"]) if e]
        if len(entries) > MAX_DOMAINS:
            raise forms.ValidationError(f"At most {MAX_DOMAINS} domains.")
        cleaned = []
        for entry in entries:
            rule = normalise_rule(entry)
            if rule is None:
                raise forms.ValidationError(f"{entry!r} is not a domain name.")
            kind, domain = rule
            cleaned.append({"exact": "", "sub": "*.", "both": "."}[kind] + domain)
        return cleaned
