"""PII redaction for prompts, model output and OCR text.

Plain functions, no Django. What is found, each replaced by a placeholder:

* ``[ID_NUMBER]``  Chinese resident ID (GB 11643: 18 characters, check digit incl. X, valid
  birth date), also in full-width digits, glued to Chinese text, and grouped any way
  (6-8-4, 4-4-4-4-2...).
* ``[BANK_CARD]``  13-19 digits, plain or grouped, that pass Luhn and start like a card
  (issuer prefix), so order numbers and timestamps are left alone.
* ``[PHONE]``      numbers `phonenumbers` calls valid (Chinese mobiles and landlines by
  default, anything international with + or 00, Chinese mobiles as 86138...), also
  glued to Latin letters ('call13800138000now').
* ``[EMAIL]``, ``[IP_ADDRESS]`` (IPv4 and IPv6).

Digit groups may be separated by any of the spaces and dashes in `_FOLD` (no-break, thin,
figure, ideographic spaces; en/em dashes, minus sign, Unicode hyphens), not only by ' '
and '-'; the original characters are what is replaced.

How the text is cut up, and why it matters: text is split into *segments* at characters that
no PII can contain or depend on (CJK, most punctuation, line breaks, a space that follows a
word). Recognizers run on one segment at a time, never across a cut. Because a cut only
depends on the characters next to it, the streaming redactor can release every finished
segment at once and hold back only the segment still being written (a word or a run of
digits), and still produce exactly what `redact_text` produces on the whole text.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

ID_NUMBER = "ID_NUMBER"
BANK_CARD = "BANK_CARD"
PHONE = "PHONE"
EMAIL = "EMAIL"
IP_ADDRESS = "IP_ADDRESS"


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class RedactionResult:
    text: str
    # How many of each kind were replaced; never the values themselves.
    counts: dict[str, int] = field(default_factory=dict)


class Recognizer(Protocol):
    name: str
    kind: str
    # Breaks ties between overlapping spans of equal length (higher wins).
    priority: int

    def find(self, text: str) -> list[Span]: ...


# --- text normalisation -----------------------------------------------------------------

# Spaces that separate digit groups as well as ' ' does: no-break (U+00A0), the U+2000
# block (figure space U+2007, thin space U+2009...), narrow no-break (U+202F), medium
# mathematical (U+205F), ideographic (U+3000), Ogham (U+1680). Word processors, number
# formatting (French, Swiss) and Chinese input methods put them between digit groups.
_GROUP_SPACES = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
# Dashes and hyphens that stand for '-': hyphen U+2010, non-breaking hyphen U+2011, figure
# dash U+2012, en dash U+2013, em dash U+2014, horizontal bar U+2015, minus sign U+2212,
# small em dash U+FE58, small hyphen-minus U+FE63, full-width hyphen-minus U+FF0D.
_GROUP_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"

# Full-width forms typed by Chinese input methods, and the spaces and dashes above, folded
# one character to one character so that spans found in the folded text are valid
# positions in the original (and redaction replaces the original characters).
_FOLD = str.maketrans(
    "０１２３４５６７８９Ｘｘ＋（）" + _GROUP_SPACES + _GROUP_DASHES,
    "0123456789Xx+()" + " " * len(_GROUP_SPACES) + "-" * len(_GROUP_DASHES),
)


# --- recognizers ------------------------------------------------------------------------


class IdNumberRecognizer:
    name = "cn_resident_id"
    kind = ID_NUMBER
    priority = 50

    # 6 region + 8 birth date + 3 sequence + check, in any grouping by single spaces or
    # dashes (6-8-4, 4-4-4-4-2, 3-3-4-4-4...), the X check digit only at the very end. A
    # run of such groups is searched for consecutive groups holding exactly 18 characters;
    # the lookarounds refuse a window inside a longer unbroken number.
    _run = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?:[Xx](?![0-9]))?(?![0-9])")
    _group = re.compile(r"[0-9]+[Xx]?")

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for run in self._run.finditer(text):
            if sum(ch.isdigit() for ch in run.group()) < 17:
                continue
            groups = [
                (g.start() + run.start(), g.end() + run.start())
                for g in self._group.finditer(run.group())
            ]
            spans.extend(self._ids_in(text, groups))
        return spans

    def _ids_in(self, text: str, groups: list[tuple[int, int]]) -> list[Span]:
        found: list[Span] = []
        i = 0
        while i < len(groups):
            number, end = "", None
            for j in range(i, len(groups)):
                number += text[groups[j][0] : groups[j][1]]
                if len(number) >= 18 or not number.isdigit():
                    if len(number) == 18 and _valid_resident_id(number.upper()):
                        end = j
                    break  # bounded work: at most 18 characters per start
            if end is None:
                i += 1
            else:
                found.append(Span(groups[i][0], groups[end][1], self.kind))
                i = end + 1
        return found


def _has_birth_date(number: str) -> bool:
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return False
    return 1900 <= born.year and born <= datetime.date.today()


def _valid_resident_id(number: str) -> bool:
    """GB 11643 check digit and a real birth date.

    Not stdnum's is_valid: it also requires the region code to be in its bundled table,
    which lags behind re-drawn counties, and a missed ID is worse than a redacted number.
    """
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return ric.calc_check_digit(number) == number[-1] and _has_birth_date(number)


# First four digits of card numbers that issuers actually use (Visa, Mastercard incl. the
# 2-series, Amex, JCB, Diners, Discover, UnionPay, Maestro, older Chinese 955x debit cards).
# Without this a random 16-digit order number still passes Luhn one time in ten.
_CARD_PREFIXES = (
    (2221, 2720),
    (3000, 3059),
    (3400, 3499),
    (3528, 3589),
    (3600, 3999),
    (4000, 6999),
    (8100, 8199),
    (9550, 9559),
)


def _plausible_card(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    if len(digits) == 18 and _has_birth_date(digits):
        # Shaped like a resident ID whose check digit failed: a typo or a reference number,
        # not one of the rare 18-digit cards.
        return False
    prefix = int(digits[:4])
    if not any(low <= prefix <= high for low, high in _CARD_PREFIXES):
        return False
    return luhn.is_valid(digits)


class BankCardRecognizer:
    name = "bank_card"
    kind = BANK_CARD
    priority = 40

    # A maximal run of digit groups joined by single spaces or dashes (after folding, any
    # of the spaces and dashes in _FOLD). Not followed by X: that is an ID number (check
    # digit X), not a 17-digit card.
    # Possessive: the run is maximal, never a shorter run that happens to avoid the X.
    _run = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*+(?![0-9Xx])")
    _group = re.compile(r"[0-9]+")

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for run in self._run.finditer(text):
            digits = re.sub(r"[^0-9]", "", run.group())
            if len(digits) == 18 and _has_birth_date(digits):
                # An ID number grouped 4-4-4-4-2 whose check digit failed: its first 16
                # digits are no card either.
                continue
            groups = [
                (g.start() + run.start(), g.end() + run.start())
                for g in self._group.finditer(run.group())
            ]
            spans.extend(self._cards_in(text, groups))
        return spans

    def _cards_in(self, text: str, groups: list[tuple[int, int]]) -> list[Span]:
        """Longest card-like window of consecutive groups at each start, no overlap."""
        found: list[Span] = []
        i = 0
        while i < len(groups):
            digits, best = "", None
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > 19:
                    break  # bounded work even for '1 1 1 1 ...'
                if _plausible_card(digits):
                    best = j
            if best is None:
                i += 1
            else:
                found.append(Span(groups[i][0], groups[best][1], self.kind))
                i = best + 1
        return found


# Types that belong to a person; toll-free, premium and shared-cost lines are businesses.
_PERSONAL_NUMBER_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
        phonenumbers.PhoneNumberType.PAGER,
    }
)
# 170379320.17 and 16.06.2008 are amounts and dates even where a number plan says "valid";
# so is 180 440 569.78 (thousands grouped by spaces, also no-break or thin ones, folded
# to ' '): nobody groups a phone number 3-3-3.
_AMOUNT_OR_DATE = re.compile(
    r"[0-9]+\.[0-9]{1,2}|[0-9]{1,4}[./-][0-9]{1,2}[./-][0-9]{1,4}"
    r"|[0-9]{1,3}(?: [0-9]{3})+(?:[.,][0-9]{1,2})?"
)


class PhoneRecognizer:
    name = "phone"
    kind = PHONE
    priority = 30

    def __init__(self, region: str = "CN") -> None:
        # Numbers without a country code are read as this region's (the product's users
        # are mainly in China); anything with + or 00 is read as written.
        self.region = region

    # phonenumbers refuses a number with a Latin letter right before or after it (VALID
    # leniency skips 'abc8005001234'), so 'call13800138000now' and '13800138000abc' were
    # missed. Letters become ',' (one character for one, positions stay valid): what
    # bounds a number is then only whether a digit is next to it, and a phone inside a
    # longer digit run (an order number) is still no match.
    _LETTERS = str.maketrans(dict.fromkeys(string.ascii_letters, ","))

    def find(self, text: str) -> list[Span]:
        if sum(ch.isdigit() for ch in text) < 7:
            return []  # the shortest valid numbers we care about have 7+ digits
        matcher = phonenumbers.PhoneNumberMatcher(
            text.translate(self._LETTERS), self.region, leniency=phonenumbers.Leniency.VALID
        )
        return [Span(m.start, m.end, self.kind) for m in matcher if self._written_as_phone(m)]

    @staticmethod
    def _written_as_phone(match: phonenumbers.PhoneNumberMatch) -> bool:
        """Stricter than phonenumbers' VALID, which finds phones in too many numbers.

        VALID happily strips leading digits as dialling prefixes, so order numbers,
        13-digit timestamps and 10-digit Beijing numbers missing their 0 all "match".
        Keep a match only if it is written the way people write that number: with + or
        00 in front, exactly as its national format (trunk 0 included), or as the
        country code and national number without the + ('8613800138000').
        """
        number, raw = match.number, match.raw_string
        if phonenumbers.number_type(number) not in _PERSONAL_NUMBER_TYPES:
            return False
        if _AMOUNT_OR_DATE.fullmatch(raw):
            return False
        if raw.lstrip("(").startswith(("+", "00")):
            return True
        digits = re.sub(r"[^0-9]", "", raw)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if digits == re.sub(r"[^0-9]", "", national):
            return True
        # Country code without +: '8613800138000'. Compact, only for mobiles: a random
        # 12-digit order number starting with 86 is a valid landline far too often.
        code = str(number.country_code)
        if digits != code + phonenumbers.national_significant_number(number):
            return False
        separated = not raw.lstrip("(")[len(code)].isdigit()
        return separated or phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


class EmailRecognizer:
    name = "email"
    kind = EMAIL
    priority = 60

    _pattern = re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}"
        r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
        # Not followed by more domain: 'a@b.co' inside 'a@b.com' or 'a@b.co.uk' is no match.
        r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
    )

    def find(self, text: str) -> list[Span]:
        if "@" not in text:
            return []
        return [Span(m.start(), m.end(), self.kind) for m in self._pattern.finditer(text)]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


class IpAddressRecognizer:
    name = "ip_address"
    kind = IP_ADDRESS
    priority = 20

    # No letter or dot before ('v1.2.3.4' is a version), no further digit or octet after.
    _ipv4 = re.compile(rf"(?<![0-9A-Za-z.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9]|\.[0-9])")
    # Hex digits, colons and dots (for ::ffff:1.2.3.4) with at least two colons; checked by
    # the ipaddress module, which rejects times (12:30:45) and MAC addresses.
    _ipv6 = re.compile(
        r"(?<![0-9A-Za-z:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45}(?![0-9A-Za-z:])"
    )

    def find(self, text: str) -> list[Span]:
        spans = [Span(m.start(), m.end(), self.kind) for m in self._ipv4.finditer(text)]
        if text.count(":") >= 2:
            for m in self._ipv6.finditer(text):
                candidate = m.group().rstrip(".")  # a sentence may end right after it
                if not any(ch.isdigit() for ch in candidate):
                    continue  # '::' or 'a::b' are C++ or Rust paths far more often than hosts
                try:
                    ipaddress.IPv6Address(candidate)
                except ValueError:
                    continue
                spans.append(Span(m.start(), m.start() + len(candidate), self.kind))
        return spans


# The registry: append a recognizer object here (name, kind, priority, find) to add a kind.
RECOGNIZERS: list[Recognizer] = [
    IdNumberRecognizer(),
    BankCardRecognizer(),
    PhoneRecognizer(),
    EmailRecognizer(),
    IpAddressRecognizer(),
]


# --- segmentation -----------------------------------------------------------------------

# Characters a PII value can be made of. Everything else (CJK, ',', ';', '|', quotes,
# brackets other than parentheses, emoji, line breaks...) ends a segment.
_CONTENT = frozenset(
    string.ascii_letters
    + string.digits
    + "+-.()/@_%:"
    + "０１２３４５６７８９Ｘｘ＋－（）"
    + _GROUP_DASHES
)
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# A space inside PII only ever sits between digit groups: '+86 138', '(010) 6552', '4111 1111'.
_GAP_BEFORE = frozenset("0123456789０１２３４５６７８９)）")
_GAP_AFTER = frozenset("0123456789０１２３４５６７８９(（")
MAX_GAP = 2
# A segment this long is cut at its last inner space, so hold-back and work stay bounded.
MAX_SEGMENT = 256


def _is_gap_char(ch: str) -> bool:
    return ch.isspace() and ch not in _LINE_BREAKS


def _segments(text: str, *, final: bool) -> tuple[list[tuple[int, int]], int]:
    """Content segments of `text`, and how far the text is decided.

    With final=False the text may continue: the segment still open at the end (and a
    space after a digit whose next character is unknown) is not decided, and `done`
    stops at its start. Every decision looks at most MAX_GAP + 1 characters ahead and
    never behind the current segment's start, so scanning a decided suffix again gives
    the same segments: this is what makes streaming exact.
    """
    segments: list[tuple[int, int]] = []
    seg_start: int | None = None
    last_gap: tuple[int, int] | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _CONTENT:
            if seg_start is None:
                seg_start, last_gap = i, None
            i += 1
            if i - seg_start > MAX_SEGMENT:
                if last_gap is not None:
                    segments.append((seg_start, last_gap[0]))
                    seg_start, last_gap = last_gap[1], None
                else:
                    segments.append((seg_start, i - 1))
                    seg_start = i - 1
            continue
        if seg_start is not None and _is_gap_char(ch) and text[i - 1] in _GAP_BEFORE:
            j = i
            while j < n and j - i <= MAX_GAP and _is_gap_char(text[j]):
                j += 1
            if j - i <= MAX_GAP:
                if j == n and not final:
                    return segments, seg_start  # depends on what comes after the space
                if j < n and text[j] in _GAP_AFTER:
                    last_gap = (i, j)
                    i = j
                    continue
        # A cut: this character belongs to no segment.
        if seg_start is not None:
            segments.append((seg_start, i))
            seg_start = None
        i += 1
    if seg_start is not None:
        if not final:
            return segments, seg_start
        segments.append((seg_start, n))
    return segments, n


def _spans_in(
    text: str, segments: list[tuple[int, int]], recognizers: list[Recognizer]
) -> list[Span]:
    spans: list[Span] = []
    for start, end in segments:
        piece = text[start:end].translate(_FOLD)
        for recognizer in recognizers:
            for span in recognizer.find(piece):
                spans.append(Span(span.start + start, span.end + start, span.kind))
    return _resolve(spans, recognizers)


def _resolve(spans: list[Span], recognizers: list[Recognizer]) -> list[Span]:
    """Merge overlapping spans into their union, named after the longest (then priority).

    The union, not the winner alone: if a phone number overlaps an ID number, dropping
    either would leave part of the other readable.
    """
    priority = {r.kind: r.priority for r in recognizers}
    merged: list[Span] = []
    cluster: list[Span] = []

    def close() -> None:
        if cluster:
            winner = max(cluster, key=lambda s: (len(s), priority.get(s.kind, 0)))
            merged.append(Span(cluster[0].start, max(s.end for s in cluster), winner.kind))

    for span in sorted(spans):
        if cluster and span.start >= max(s.end for s in cluster):
            close()
            cluster = []
        cluster.append(span)
    close()
    return merged


def _render(text: str, spans: list[Span], end: int, counts: Counter[str]) -> str:
    out: list[str] = []
    position = 0
    for span in spans:
        out.append(text[position : span.start])
        out.append(f"[{span.kind}]")
        counts[span.kind] += 1
        position = span.end
    out.append(text[position:end])
    return "".join(out)


# --- public API ---------------------------------------------------------------------------


def find_pii_spans(text: str, *, recognizers: list[Recognizer] | None = None) -> list[Span]:
    """Non-overlapping PII spans in `text`, in order (for boxes to blur on OCR lines)."""
    segments, _ = _segments(text, final=True)
    return _spans_in(text, segments, RECOGNIZERS if recognizers is None else recognizers)


def redact_text(text: str, *, recognizers: list[Recognizer] | None = None) -> RedactionResult:
    """`text` with every PII span replaced by its placeholder, e.g. '[PHONE]'."""
    counts: Counter[str] = Counter()
    spans = find_pii_spans(text, recognizers=recognizers)
    return RedactionResult(text=_render(text, spans, len(text), counts), counts=dict(counts))


class StreamingRedactor:
    """Redacts text that arrives in chunks, e.g. model tokens.

    ``feed`` returns what is safe to show now; ``flush`` returns the rest at the end. Only
    the unfinished segment at the end is held back: a trailing word (it could still grow
    into an email address) or a trailing run of digits and separators (a number), at most
    MAX_SEGMENT + MAX_GAP characters. Text after a cut flows through at once. For any
    chunking, ''.join(feed(c) for c in chunks) + flush() == redact_text(text).text.
    """

    def __init__(self, *, recognizers: list[Recognizer] | None = None) -> None:
        self._recognizers = RECOGNIZERS if recognizers is None else recognizers
        self._pending = ""
        self.counts: Counter[str] = Counter()

    @property
    def held_back(self) -> str:
        return self._pending

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        return self._release(final=False)

    def flush(self) -> str:
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        text = self._pending
        segments, done = _segments(text, final=final)
        spans = _spans_in(text, segments, self._recognizers)
        self._pending = text[done:]
        return _render(text, spans, done, self.counts)
