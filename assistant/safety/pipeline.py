"""The ordered safety steps around every upload, question and answer (docs/safety.md).

Uploads (`screen_upload`, called by `upload_create` before anything is stored):
  1. sanitise: content sniffed, limits, re-encoded without metadata (images.py)
  2. OCR, then PII boxed out of the copy that is stored and shown (image_pii.py)
  3. the model copy is made from the unredacted pixels (kept until the answer is final)

Questions (`screen_question`, called by `message_ask` before anything is stored):
  1. PII redaction of the prompt (pii.py): only the redacted text is stored, logged,
     audited, queued; the model gets it too unless PII_MODEL_SEES_RAW_PROMPT
  2. moderation of the redacted prompt and of the screenshot's (redacted) OCR text:
     block -> refusal + audit, nothing stored; flag -> stored, review item, audit

Answers (`AnswerGuard`, driven by inference/runner.py while the engine streams):
  1. PII redaction with hold-back (StreamingRedactor)
  2. Markdown/HTML images made inert (markup.py)
  3. moderation: streaming checkers on every piece before it is released; with a
     non-streaming checker (external classifier) configured, text is released in
     segments, each only after that checker read the answer up to the segment's end;
     at the end all checkers have read the whole answer. Block -> engine aborted,
     refusal stored and sent, audit; flag -> answer stored and sent, review item, audit
  4. once final, the screenshot's unredacted model copy is replaced (`answer_settled`)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..errors import ServiceError
from .image_pii import ocr_lines, redact_image
from .images import ImageRejected, prepare_for_model, sanitise_upload
from .markup import ImageNeutraliser
from .moderation import (
    BLOCK,
    StreamingModerator,
    Verdict,
    moderate,
    refusal_message,
)
from .pii import StreamingRedactor, redact_text

logger = logging.getLogger(__name__)

BLOCKED_CODE = "content_blocked"
CONTENT_FILTER = "content_filter"  # finish_reason of an answer replaced by a refusal


# --- prompts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenedPrompt:
    text: str
    # Counts per kind of PII removed, for the audit trail; never the values themselves.
    redactions: dict[str, int] = field(default_factory=dict)


def screen_prompt(text: str) -> ScreenedPrompt:
    result = redact_text(text)
    return ScreenedPrompt(text=result.text, redactions=dict(result.counts))


@dataclass(frozen=True)
class ScreenedQuestion(ScreenedPrompt):
    verdict: Verdict = field(default_factory=Verdict)
    # The question as typed; only kept (in memory) when the model may see it.
    raw_text: str | None = field(default=None, repr=False)

    @property
    def moderation_record(self) -> dict:
        if self.verdict.action == "allow":
            return {}
        return {**self.verdict.audit_details(), "stage": "input"}


def screen_question(*, conversation, acting_user, text: str, upload=None) -> ScreenedQuestion:
    """Redact, then moderate. Raises ServiceError (content_blocked) after auditing a block."""
    screened = screen_prompt(text)
    texts = [screened.text]
    sources = ["prompt"]
    if upload is not None and upload.ocr_text:
        # Text inside a screenshot is untrusted input like the prompt itself.
        texts.append(upload.ocr_text)
        sources.append("screenshot_text")
    verdict = moderate(texts, stage="input")
    if verdict.blocked:
        refuse_input(
            verdict,
            acting_user=acting_user,
            obj=conversation,
            sources=sources,
            redactions=screened.redactions,
        )
    keep_raw = (
        settings.PII_MODEL_SEES_RAW_PROMPT
        and settings.INFERENCE_MODE == "embedded"
        and screened.redactions
    )
    return ScreenedQuestion(
        text=screened.text,
        redactions=screened.redactions,
        verdict=verdict,
        raw_text=text if keep_raw else None,
    )


def screen_history(*, texts: list[str], uploads=(), acting_user, obj) -> Verdict:
    """Moderate earlier turns that a client sends along with its question (an
    OpenAI-style message list carries its whole history, system text included), and the
    text inside screenshots attached to them: a harmful request placed in the history,
    with "continue" as the last message, is input like any other. Raises ServiceError
    (content_blocked) after auditing a block; returns the verdict (a flag is recorded by
    history_screened_record once the conversation exists)."""
    sources = ["history"] * len(texts)
    texts = list(texts)
    for upload in uploads:
        if upload is not None and upload.ocr_text:
            texts.append(upload.ocr_text)
            sources.append("screenshot_text")
    verdict = moderate(texts, stage="input")
    if verdict.blocked:
        refuse_input(verdict, acting_user=acting_user, obj=obj, sources=sorted(set(sources)))
    return verdict


def refuse_input(verdict: Verdict, *, acting_user, obj, sources: list[str], **details):
    """Audit a blocked input and raise the refusal the user sees. Callers screen before
    they open their own transaction, so the record commits while nothing else is stored."""
    from audit.services import audit_record

    with transaction.atomic():
        audit_record(
            actor=acting_user,
            action="moderation.block",
            obj=obj,
            details={**verdict.audit_details(), "stage": "input", "sources": sources, **details},
        )
    raise ServiceError(refusal_message(verdict), code=BLOCKED_CODE, status=400)


def history_screened_record(*, verdict: Verdict, conversation, acting_user) -> None:
    """Inside the transaction that stores the history: queue a flagged one for review."""
    if not verdict.flagged:
        return
    from audit.services import audit_record
    from review.services import review_item_create

    review_item_create(
        conversation=conversation,
        source="moderation",
        reason="input history: " + ",".join(verdict.categories),
        acting_user=acting_user,
    )
    audit_record(
        actor=acting_user,
        action="moderation.flag",
        obj=conversation,
        details={**verdict.audit_details(), "stage": "input", "sources": ["history"]},
    )


def question_screened_record(
    *, screened: ScreenedQuestion, conversation, question, answer, acting_user
):
    """Inside message_ask's transaction: queue a flagged question for review, and hand the
    raw prompt to the engine thread (in memory) if settings allow."""
    if screened.verdict.flagged:
        from audit.services import audit_record
        from review.services import review_item_create

        review_item_create(
            conversation=conversation,
            source="moderation",
            reason="input: " + ",".join(screened.verdict.categories),
            message=question,
            acting_user=acting_user,
        )
        audit_record(
            actor=acting_user,
            action="moderation.flag",
            obj=question,
            details={**screened.verdict.audit_details(), "stage": "input"},
        )
    if screened.raw_text is not None:
        raw = screened.raw_text
        transaction.on_commit(lambda: _raw_prompts.put(answer.pk, raw))


class _RawPromptHandoff:
    """Raw questions waiting for the engine thread of this process, keyed by answer id.
    Entries are taken once and expire, so nothing lingers in memory either."""

    TTL = 600.0

    def __init__(self) -> None:
        self._items: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def put(self, message_id: int, text: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if now - v[0] < self.TTL}
            self._items[message_id] = (now, text)

    def take(self, message_id: int) -> str | None:
        with self._lock:
            item = self._items.pop(message_id, None)
        if item is None or time.monotonic() - item[0] >= self.TTL:
            return None
        return item[1]


_raw_prompts = _RawPromptHandoff()


def request_with_raw_prompt(request):
    """The engine request with the newest question as typed, if one was handed over."""
    try:
        message_id = int(request.request_id)
    except ValueError:
        return request
    raw = _raw_prompts.take(message_id)
    if raw is None:
        return request
    turns = list(request.turns)
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user":
            turns[i] = replace(turns[i], text=raw)
            break
    return replace(request, turns=tuple(turns))


# --- uploads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenedUpload:
    original: bytes  # what is stored and shown: PII boxed out
    extension: str
    content_type: str
    width: int
    height: int
    model_copy: bytes  # PNG for the engine; unredacted pixels when model_copy_unredacted
    model_copy_unredacted: bool
    ocr_text: str  # redacted
    pii_counts: dict[str, int]


def screen_upload(data: bytes) -> ScreenedUpload:
    try:
        clean = sanitise_upload(
            data, max_bytes=settings.UPLOAD_MAX_BYTES, max_pixels=settings.UPLOAD_MAX_PIXELS
        )
        model_copy = prepare_for_model(
            clean.data,
            longest_side=settings.IMAGE_MODEL_LONGEST_SIDE,
            enhance_document=settings.IMAGE_ENHANCE_DOCUMENTS,
        )
    except ImageRejected as exc:
        status = 413 if exc.code == "too_large" else 400
        raise ServiceError(exc.message, code=exc.code, status=status) from None
    stored, ocr_text, counts = clean.data, "", {}
    if settings.PII_REDACT_IMAGES:
        try:
            redaction = redact_image(
                clean.data, read_lines=ocr_lines, max_side=settings.SAFETY_OCR_MAX_SIDE
            )
        except Exception:
            # Fail closed: without OCR we cannot tell what the picture shows, and storing
            # it unredacted is exactly what this step exists to prevent.
            logger.exception("screenshot OCR failed; upload refused")
            raise ServiceError(
                "The screenshot could not be checked for personal data right now. "
                "Please try again in a minute.",
                code="redaction_unavailable",
                status=503,
            ) from None
        stored, ocr_text, counts = redaction.data, redaction.text, redaction.counts
    return ScreenedUpload(
        original=stored,
        extension=clean.extension,
        content_type=clean.content_type,
        width=clean.width,
        height=clean.height,
        model_copy=model_copy.data,
        model_copy_unredacted=bool(counts),
        ocr_text=ocr_text,
        pii_counts=counts,
    )


# Refusals are audited with a reason code, never the file, its name, or a URL beyond its
# host: a URL's path and query may carry access tokens, and the audit trail outlives them.
UPLOAD_REFUSED = "safety.upload_refused"
URL_REFUSED = "safety.url_refused"
_HOST_CHARS = re.compile(r"^[a-z0-9.:\-]+$")


def upload_refused_record(*, actor, code: str, api_key=None) -> None:
    """Audit an upload refused for what it is (hostile, not an image, too large...)."""
    details = {"reason": code[:40], "channel": "api" if api_key is not None else "web"}
    _refusal_record(actor, UPLOAD_REFUSED, api_key, ("upload", "*"), details)


def url_refused_record(
    *, actor, api_key, url: str, code: str, status: int, refused_url: str | None = None
) -> None:
    """Audit an image URL the fetcher refused (allowlist, SSRF checks, size, type...),
    naming only the host asked for and, where a redirect led elsewhere, the host of the
    hop that was refused."""
    details = {"reason": code[:40], "status": status, "host": url_host(url)}
    hop_host = url_host(refused_url) if refused_url else ""
    if hop_host and hop_host != details["host"]:
        details["redirect_host"] = hop_host
    _refusal_record(actor, URL_REFUSED, api_key, ("image_url", "*"), details)


def _refusal_record(actor, action: str, api_key, anonymous_obj, details: dict) -> None:
    from audit.services import audit_record

    if api_key is not None:
        details = {**details, "key": api_key.prefix}
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            obj=api_key if api_key is not None else anonymous_obj,
            details=details,
        )


def url_host(url: str) -> str:
    """The host of `url` as the fetcher reads it (punycode, lower case), or "" when there
    is none worth keeping. Never the user name, password, path, query or fragment."""
    from urllib.parse import urlsplit

    from .fetch import FetchRefused, normalise_host

    try:
        raw = urlsplit(str(url).strip()).hostname or ""
    except ValueError:
        return ""
    try:
        host = normalise_host(raw)
    except FetchRefused:
        # An IP literal or a malformed name: kept only if it is plainly a host.
        host = raw.lower()
    if not _HOST_CHARS.match(host):
        return ""
    # At most 100 characters (audit details take no longer strings), from the right:
    # the registered domain is the part that says whose host it is.
    return host[-100:].lstrip(".-")


def upload_forget_unredacted(*, upload_id) -> bool:
    """Replace an upload's unredacted model copy with one made from the redacted original,
    unless an answer that uses it is still being written. True if it was replaced.

    Holds the upload's row lock while it decides; `generation_request_build` takes the
    same lock to read the path, so an answer never gets a path that is then deleted."""
    from audit.services import audit_record

    from .. import storage
    from ..models import Message, Upload

    if settings.KEEP_UNREDACTED_IMAGES:
        return False
    upload = Upload.objects.filter(pk=upload_id, model_copy_unredacted=True).first()
    if upload is None:
        return False
    prepared = prepare_for_model(
        storage.path(upload.original).read_bytes(),
        longest_side=settings.IMAGE_MODEL_LONGEST_SIDE,
        enhance_document=settings.IMAGE_ENHANCE_DOCUMENTS,
    )
    new_path = storage.save_new(prepared.data, "png")
    try:
        with transaction.atomic():
            upload = (
                Upload.objects.select_for_update()
                .filter(pk=upload_id, model_copy_unredacted=True)
                .first()
            )
            # In use: an answer still being written in any conversation that shows this
            # screenshot, not only one replying to the question that carried it: a
            # follow-up question sends the conversation's newest screenshot again.
            in_use = (
                Message.objects.filter(
                    role=Message.Role.ASSISTANT,
                    status__in=Message.UNFINISHED_STATUSES,
                    conversation__messages__upload_id=upload_id,
                )
                .values("pk")
                .exists()
            )
            if upload is None or in_use:
                storage.delete(new_path)
                return False
            old_path = upload.model_copy
            upload.model_copy = new_path
            upload.model_copy_unredacted = False
            upload.save(update_fields=["model_copy", "model_copy_unredacted"])
            audit_record(actor=None, action="upload.unredacted_removed", obj=upload)
            transaction.on_commit(lambda: storage.delete(old_path))
    except Exception:
        storage.delete(new_path)
        raise
    return True


def uploads_forget_stale_unredacted(*, limit: int = 50) -> int:
    """Unredacted model copies of uploads nobody asked about within UNREDACTED_IMAGE_TTL."""
    from ..models import Upload

    if settings.KEEP_UNREDACTED_IMAGES:
        return 0
    cutoff = timezone.now() - timedelta(seconds=settings.UNREDACTED_IMAGE_TTL)
    stale = Upload.objects.filter(model_copy_unredacted=True, created_at__lt=cutoff).values_list(
        "pk", flat=True
    )[:limit]
    return sum(upload_forget_unredacted(upload_id=pk) for pk in list(stale))


def answer_settled(message_id: int) -> None:
    """After an answer is final: its conversation's screenshots (the one it was asked
    about, or an earlier one that a follow-up sent again) need their unredacted pixels no
    longer, unless another answer is still using them."""
    from ..models import Message

    conversation_id = (
        Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    )
    upload_ids = set(
        Message.objects.filter(
            conversation_id=conversation_id, upload__model_copy_unredacted=True
        ).values_list("upload_id", flat=True)
    )
    for upload_id in upload_ids:
        upload_forget_unredacted(upload_id=upload_id)
    uploads_forget_stale_unredacted(limit=5)


# --- answers ---------------------------------------------------------------------------------


# Where a segment of a checked answer may end: after a sentence's end mark followed by
# white space (not the dot in "3.5" or "example.com"), a CJK end mark, or a line break.
_SEGMENT_END = re.compile(r"[.!?\u2026]+(?=\s)|[\u3002\uff01\uff1f]+|\n")
DEFAULT_SEGMENT_CHARS = 300


class AnswerGuard:
    """Everything between the engine's tokens and the client, in order: PII redaction,
    inert images, moderation. `feed` returns what may be shown now; once `blocked`, it
    returns nothing and the runner aborts the engine and stores `refusal` instead.

    With only streaming checkers (the term lists) every piece is released as soon as it
    is checked. With a non-streaming one (an external classifier) the text is released
    in checked segments: held back until a sentence ends (or `segment_chars` characters
    wait), then that checker reads the whole answer so far, and only if it does not block
    does the segment go out. So a block stops the stream before the blocked text reaches
    the client; the price is one classifier call per segment and text that arrives a
    sentence at a time."""

    def __init__(self, checkers=None, *, segment_chars: int | None = None) -> None:
        self._redactor = StreamingRedactor()
        self._markup = ImageNeutraliser()
        self._moderator = StreamingModerator(checkers=checkers)
        self._segmented = self._moderator.has_non_streaming
        if segment_chars is None:
            segment_chars = getattr(settings, "MODERATION_SEGMENT_CHARS", DEFAULT_SEGMENT_CHARS)
        self._segment_chars = max(1, int(segment_chars))
        self._held = ""  # checked by the streaming checkers, waiting for the others
        self._released = 0  # characters of the answer released so far

    @property
    def verdict(self) -> Verdict:
        return self._moderator.verdict

    @property
    def blocked(self) -> bool:
        return self.verdict.action == BLOCK

    @property
    def refusal(self) -> str:
        return refusal_message(self.verdict)

    @property
    def redactions(self) -> dict[str, int]:
        return dict(self._redactor.counts)

    def feed(self, text: str) -> str:
        if self.blocked:
            return ""
        safe = self._markup.feed(self._redactor.feed(text))
        if self._moderator.feed(safe).blocked:
            return ""
        if not self._segmented:
            return safe
        self._held += safe
        cut = self._segment_cut()
        if not cut:
            return ""
        return self._release(cut)

    def finish(self) -> str:
        """The held-back rest; then every checker has read the whole answer."""
        if self.blocked:
            return ""
        tail = self._markup.feed(self._redactor.flush()) + self._markup.flush()
        self._moderator.feed(tail)
        self._moderator.finish()
        if self.blocked:
            return ""
        if not self._segmented:
            return tail
        rest, self._held = self._held + tail, ""
        self._released += len(rest)
        return rest

    def _segment_cut(self) -> int:
        """How much of the held text forms complete segments (0: none yet)."""
        held = self._held
        if len(held) >= self._segment_chars:
            return len(held)
        end = 0
        for match in _SEGMENT_END.finditer(held):
            end = match.end()
        return end

    def _release(self, cut: int) -> str:
        """The first `cut` held characters, once the non-streaming checkers have read
        the answer up to their end; nothing if they block."""
        if self._moderator.check_whole(self._released + cut).blocked:
            self._held = ""
            return ""
        out, self._held = self._held[:cut], self._held[cut:]
        self._released += cut
        return out

    @staticmethod
    def clean_label(text: str) -> str:
        """Box labels and engine error messages come from the screen or the model too."""
        return redact_text(text or "").text


def answer_refuse(
    *, message_id: int, verdict: Verdict, engine: str, prompt_tokens=0, completion_tokens=0
):
    """Store the refusal as the answer, with its audit record. None if already final."""
    from audit.services import audit_record

    from ..models import Message
    from ..services import message_generation_finish

    with transaction.atomic():
        answer = message_generation_finish(
            message_id=message_id,
            text=refusal_message(verdict),
            finish_reason=CONTENT_FILTER,
            engine=engine,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            boxes=[],
        )
        if answer is None:
            return None
        answer.moderation = {**verdict.audit_details(), "stage": "output"}
        Message.objects.filter(pk=answer.pk).update(moderation=answer.moderation)
        audit_record(
            actor=None,
            action="moderation.block",
            obj=answer,
            details={**verdict.audit_details(), "stage": "output"},
        )
    return answer


def answer_flag(*, message_id: int, verdict: Verdict) -> None:
    """A flagged answer went out; put its conversation in front of reviewers."""
    from audit.services import audit_record
    from review.services import review_item_create

    from ..models import Message

    with transaction.atomic():
        answer = Message.objects.select_related("conversation").get(pk=message_id)
        record = {**verdict.audit_details(), "stage": "output"}
        Message.objects.filter(pk=message_id).update(moderation=record)
        review_item_create(
            conversation=answer.conversation,
            source="moderation",
            reason="output: " + ",".join(verdict.categories),
            message=answer,
        )
        audit_record(actor=None, action="moderation.flag", obj=answer, details=record)


def answer_redactions_record(*, message_id: int, counts: dict[str, int]) -> None:
    """Counts of PII removed from an answer, for the audit trail."""
    if not counts:
        return
    from audit.services import audit_record

    from ..models import Message

    with transaction.atomic():
        answer = Message.objects.get(pk=message_id)
        audit_record(
            actor=None, action="message.redact", obj=answer, details={"redactions": counts}
        )
