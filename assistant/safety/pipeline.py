"""The ordered safety steps every question passes before it is stored or sent anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from .pii import redact_text


@dataclass(frozen=True)
class ScreenedPrompt:
    text: str
    # Counts per kind of PII removed, for the audit trail; never the values themselves.
    redactions: dict[str, int] = field(default_factory=dict)


def screen_prompt(text: str) -> ScreenedPrompt:
    result = redact_text(text)
    return ScreenedPrompt(text=result.text, redactions=dict(result.counts))
