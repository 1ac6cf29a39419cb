"""Moderation of questions, screenshot text and answers.

A checker looks at a text and returns a `Verdict`: allow, flag (the answer goes out and
the conversation is queued for review) or block (the user gets a refusal). Checkers are
listed in the MODERATION_CHECKERS setting (dotted paths); the strictest verdict wins.

Built in:

* `TermListChecker` (offline, the default): curated phrase lists in English and Chinese
  (data/moderation_terms_*.tsv) plus the operators' `policy.ModerationTerm` rows, which
  add terms or override built-in ones (a row with action "allow" switches one off).
* `HttpClassifierChecker`: posts the text to an external classifier
  (MODERATION_HTTP_URL) and reads its verdict; on timeout or error it fails closed
  (block) unless MODERATION_HTTP_FAIL_OPEN is set. It is not fast enough for every
  streamed token: while an answer streams, AnswerGuard (pipeline.py) holds text back
  until a segment ends and has this checker read the answer so far before releasing it.

Checkers only ever see text that PII redaction has already passed over.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

ALLOW, FLAG, BLOCK = "allow", "flag", "block"
_RANK = {ALLOW: 0, FLAG: 1, BLOCK: 2}
DATA_DIR = Path(__file__).parent / "data"

# What a refusal says about each category: plain, not preachy, no quoting of the input.
CATEGORY_DESCRIPTIONS = {
    "weapons": "instructions for weapons or explosives",
    "violence": "help with hurting someone",
    "self_harm": "self-harm",
    "sexual_minors": "sexual content involving minors",
    "hate": "hateful content",
    "malware": "malware or stealing credentials",
    "moderation_unavailable": "content the safety check could not review right now",
}


@dataclass(frozen=True)
class Verdict:
    action: str = ALLOW
    categories: tuple[str, ...] = ()
    checkers: tuple[str, ...] = ()  # names of the checkers that did not allow

    @property
    def blocked(self) -> bool:
        return self.action == BLOCK

    @property
    def flagged(self) -> bool:
        return self.action == FLAG

    def merge(self, other: Verdict) -> Verdict:
        action = max(self.action, other.action, key=_RANK.__getitem__)
        return Verdict(
            action=action,
            categories=tuple(dict.fromkeys(self.categories + other.categories)),
            checkers=tuple(dict.fromkeys(self.checkers + other.checkers)),
        )

    def audit_details(self) -> dict:
        return {
            "action": self.action,
            "categories": list(self.categories),
            "checkers": list(self.checkers),
        }


class Checker(Protocol):
    name: str
    # Cheap enough to run on every streamed chunk of an answer. The others read the
    # answer so far at each segment end before that segment is released (AnswerGuard).
    streaming: bool

    def check(self, text: str, *, stage: str) -> Verdict: ...


def refusal_message(verdict: Verdict) -> str:
    described = [CATEGORY_DESCRIPTIONS.get(c, c.replace("_", " ")) for c in verdict.categories]
    topic = ", ".join(described[:2]) or "content that is not allowed here"
    return f"Sorry, I can't help with this: it involves {topic}."


# --- the term list checker --------------------------------------------------------------

_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NOT_WORD = re.compile(r"[^\w]+")


def normalise_term(text: str) -> str:
    """The matching form: NFKC (full-width to ASCII), case folded, invisible characters
    removed, every run of spaces and punctuation one space."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    return _NOT_WORD.sub(" ", text).strip()


def _squash(text: str) -> str:
    """For CJK terms: no spaces or punctuation at all ("制 作-炸弹" -> "制作炸弹")."""
    return normalise_term(text).replace(" ", "")


@dataclass(frozen=True)
class Term:
    text: str
    category: str
    action: str


def load_builtin_terms(folder: Path = DATA_DIR) -> list[Term]:
    terms = []
    for path in sorted(folder.glob("moderation_terms_*.tsv")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            category, action, text = line.split("\t")
            terms.append(Term(text=text, category=category, action=action))
    return terms


def merge_terms(builtin: list[Term], overrides: list[tuple[str, str, str]]) -> list[Term]:
    """Operators' rows replace built-in terms with the same matching form."""
    merged = {normalise_term(t.text): t for t in builtin}
    for text, category, action in overrides:
        key = normalise_term(text)
        if not key:
            continue
        if action == ALLOW:
            merged.pop(key, None)
        else:
            merged[key] = Term(text=text, category=category, action=action)
    return list(merged.values())


class TermMatcher:
    def __init__(self, terms: list[Term]) -> None:
        self._latin: dict[str, Term] = {}
        self._cjk: dict[str, Term] = {}
        for term in terms:
            if term.action not in (FLAG, BLOCK):
                continue
            if _CJK.search(term.text):
                self._cjk[_squash(term.text)] = term
            else:
                self._latin[normalise_term(term.text)] = term
        alternatives = sorted(self._latin, key=len, reverse=True)
        self._latin_re = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, alternatives)) + r")(?!\w)")
            if alternatives
            else None
        )
        self.max_chars = max((len(k) for k in [*self._latin, *self._cjk]), default=0)

    def matches(self, text: str) -> list[Term]:
        found: list[Term] = []
        if self._latin_re is not None:
            normal = normalise_term(text)
            found += [self._latin[m.group()] for m in self._latin_re.finditer(normal)]
        if self._cjk and _CJK.search(text):
            squashed = _squash(text)
            found += [term for key, term in self._cjk.items() if key in squashed]
        return found


# Operators' rows are re-read at most this often per process; saving one in the admin
# clears the cache of that process at once (policy/signals.py).
TERMS_TTL_SECONDS = 10.0
_matcher_lock = threading.Lock()
_matcher_cache: tuple[float, TermMatcher] | None = None


def terms_changed() -> None:
    global _matcher_cache
    _matcher_cache = None


def _operator_terms() -> list[tuple[str, str, str]]:
    try:
        from policy.selectors import moderation_term_rows

        return moderation_term_rows()
    except Exception:
        # No database here (a bare worker) or the table is missing: the built-in lists
        # still apply; never let a lookup failure switch moderation off silently.
        logger.warning("operator moderation terms could not be read", exc_info=True)
        return []


def current_matcher() -> TermMatcher:
    global _matcher_cache
    cached = _matcher_cache
    if cached is not None and time.monotonic() - cached[0] < TERMS_TTL_SECONDS:
        return cached[1]
    with _matcher_lock:
        # Checked again under the lock: when the cache expires, hundreds of streaming
        # answers arrive here at once, and one rebuild must serve them all.
        cached = _matcher_cache
        if cached is not None and time.monotonic() - cached[0] < TERMS_TTL_SECONDS:
            return cached[1]
        matcher = TermMatcher(merge_terms(_builtin_terms(), _operator_terms()))
        _matcher_cache = (time.monotonic(), matcher)
    return matcher


@lru_cache(maxsize=1)
def _builtin_terms() -> list[Term]:
    return load_builtin_terms()


class TermListChecker:
    name = "terms"
    streaming = True

    def __init__(self, terms: list[Term] | None = None) -> None:
        # With explicit terms (tests, other deployments' lists) the operators' rows are
        # not consulted.
        self._fixed = TermMatcher(terms) if terms is not None else None

    @property
    def matcher(self) -> TermMatcher:
        return self._fixed or current_matcher()

    def check(self, text: str, *, stage: str) -> Verdict:
        hits = self.matcher.matches(text)
        if not hits:
            return Verdict()
        action = max((t.action for t in hits), key=_RANK.__getitem__)
        categories = tuple(dict.fromkeys(t.category for t in hits if t.action == action))
        return Verdict(action=action, categories=categories, checkers=(self.name,))


# --- an external classifier -------------------------------------------------------------


class HttpClassifierChecker:
    """POSTs `{"input": text, "stage": "input"|"output"}` as JSON to MODERATION_HTTP_URL
    and expects `{"action": "allow"|"flag"|"block", "categories": [...]}` back.

    Settings: MODERATION_HTTP_URL, MODERATION_HTTP_TIMEOUT (seconds),
    MODERATION_HTTP_TOKEN (sent as a bearer token), MODERATION_HTTP_FAIL_OPEN.
    The URL is the operator's, so it is not subject to the image-URL allowlist; it is
    called without environment proxies.
    """

    name = "http"
    streaming = False
    MAX_RESPONSE = 64 * 1024

    def __init__(
        self,
        *,
        url: str | None = None,
        timeout: float | None = None,
        fail_open: bool | None = None,
        token: str | None = None,
    ) -> None:
        self._url, self._timeout, self._fail_open, self._token = url, timeout, fail_open, token

    def _setting(self, value, name, default):
        if value is not None:
            return value
        from django.conf import settings

        return getattr(settings, name, default)

    def check(self, text: str, *, stage: str) -> Verdict:
        url = self._setting(self._url, "MODERATION_HTTP_URL", "")
        fail_open = self._setting(self._fail_open, "MODERATION_HTTP_FAIL_OPEN", False)
        try:
            if not url.startswith(("http://", "https://")):
                raise ValueError("MODERATION_HTTP_URL is not an http(s) URL")
            return self._ask(url, text, stage)
        except Exception as exc:  # noqa: BLE001 - any failure of the classifier is handled alike
            logger.warning("moderation classifier unavailable (%s)", type(exc).__name__)
            if fail_open:
                return Verdict()
            return Verdict(
                action=BLOCK, categories=("moderation_unavailable",), checkers=(self.name,)
            )

    def _ask(self, url: str, text: str, stage: str) -> Verdict:
        timeout = float(self._setting(self._timeout, "MODERATION_HTTP_TIMEOUT", 3.0))
        token = self._setting(self._token, "MODERATION_HTTP_TOKEN", "")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"input": text, "stage": stage}).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - operator URL, scheme checked
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(self.MAX_RESPONSE + 1)
        if len(raw) > self.MAX_RESPONSE:
            raise ValueError("classifier answer too large")
        answer = json.loads(raw)
        action = answer.get("action")
        if action not in _RANK:
            raise ValueError("classifier answered without a valid action")
        categories = answer.get("categories") or []
        if not isinstance(categories, list):
            raise ValueError("classifier categories must be a list")
        categories = tuple(str(c)[:40] for c in categories[:10])
        if action == ALLOW:
            return Verdict()
        return Verdict(action=action, categories=categories, checkers=(self.name,))


# --- running the configured checkers ------------------------------------------------------


@lru_cache(maxsize=8)
def _load_checkers(paths: tuple[str, ...]) -> tuple[Checker, ...]:
    checkers = []
    for path in paths:
        module_name, _, attr = path.rpartition(".")
        factory = getattr(import_module(module_name), attr)
        checkers.append(factory())
    return tuple(checkers)


def configured_checkers() -> tuple[Checker, ...]:
    from django.conf import settings

    return _load_checkers(tuple(settings.MODERATION_CHECKERS))


def moderate(
    texts: list[str],
    *,
    stage: str,
    checkers: tuple[Checker, ...] | None = None,
    streaming_only=False,
) -> Verdict:
    """The strictest verdict of every checker over every non-empty text."""
    verdict = Verdict()
    for checker in configured_checkers() if checkers is None else checkers:
        if streaming_only and not checker.streaming:
            continue
        for text in texts:
            if text and text.strip():
                verdict = verdict.merge(checker.check(text, stage=stage))
    return verdict


@dataclass
class StreamingModerator:
    """Checks an answer as it grows. `feed` checks the new text together with the end of
    what was already checked (so a term split across chunks is still seen) using the
    streaming checkers; `check_whole` runs the others (an external classifier) on the
    answer so far, up to a point (AnswerGuard does so before it releases a segment);
    `finish` runs them on the whole answer, unless that exact text was checked already."""

    checkers: tuple[Checker, ...] | None = None
    text: str = ""
    verdict: Verdict = field(default_factory=Verdict)
    _checked_upto: int = 0
    _whole_checked_upto: int = 0

    def __post_init__(self) -> None:
        if self.checkers is None:
            self.checkers = configured_checkers()
        self._overlap = max(
            [256]
            + [c.matcher.max_chars + 8 for c in self.checkers if isinstance(c, TermListChecker)]
        )
        self._others = tuple(c for c in self.checkers if not c.streaming)

    @property
    def has_non_streaming(self) -> bool:
        """Whether some checker only judges whole texts (`check_whole` / `finish`)."""
        return bool(self._others)

    def feed(self, chunk: str) -> Verdict:
        if not chunk:
            return self.verdict
        start = max(0, self._checked_upto - self._overlap)
        self.text += chunk
        window = self.text[start:]
        self._checked_upto = len(self.text)
        self.verdict = self.verdict.merge(
            moderate([window], stage="output", checkers=self.checkers, streaming_only=True)
        )
        return self.verdict

    def check_whole(self, upto: int | None = None) -> Verdict:
        """The non-streaming checkers on the answer from its start up to `upto` (all of it
        when None). Text up to where they last looked is not sent again on its own."""
        end = len(self.text) if upto is None else min(upto, len(self.text))
        if end <= self._whole_checked_upto:
            return self.verdict
        self._whole_checked_upto = end
        if self._others:
            self.verdict = self.verdict.merge(
                moderate([self.text[:end]], stage="output", checkers=self._others)
            )
        return self.verdict

    def finish(self) -> Verdict:
        return self.check_whole()
