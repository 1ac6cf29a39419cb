"""PII redaction: a catalogue of real PII, near-misses and streaming splits."""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric

from assistant.safety.pii import (
    MAX_GAP,
    MAX_SEGMENT,
    RECOGNIZERS,
    Span,
    StreamingRedactor,
    find_pii_spans,
    redact_text,
)

# Valid GB 11643 numbers (checked below), one with the X check digit.
ID_VALID = "110101199003074573"
ID_X = "11010519491231002X"
ID_BAD_CHECK = "110101199003074578"  # one off in the check digit


def test_fixtures_are_what_they_claim() -> None:
    assert ric.is_valid(ID_VALID) and ric.is_valid(ID_X)
    assert not ric.is_valid(ID_BAD_CHECK)
    assert luhn.is_valid("4111111111111111")
    assert not luhn.is_valid("4111111111111112")


# --- the catalogue: (input, expected output) ---------------------------------------------

REDACTED = [
    # Resident ID numbers
    pytest.param(f"ID {ID_VALID}", "ID [ID_NUMBER]", id="id-plain"),
    pytest.param(f"ID {ID_X}", "ID [ID_NUMBER]", id="id-X-check-digit"),
    pytest.param(f"ID {ID_X.lower()}", "ID [ID_NUMBER]", id="id-lowercase-x"),
    pytest.param(f"身份证号{ID_VALID}请核对", "身份证号[ID_NUMBER]请核对", id="id-touching-cjk"),
    pytest.param(
        "身份证：１１０１０１１９９００３０７４５７３。",
        "身份证：[ID_NUMBER]。",
        id="id-full-width",
    ),
    pytest.param("１１０１０５１９４９１２３１００２Ｘ", "[ID_NUMBER]", id="id-full-width-X"),
    pytest.param("110101 19900307 4573", "[ID_NUMBER]", id="id-grouped-6-8-4"),
    pytest.param(f"({ID_VALID})", "([ID_NUMBER])", id="id-in-parentheses"),
    # Bank cards
    pytest.param("card 4111111111111111 ok", "card [BANK_CARD] ok", id="card-visa-plain"),
    pytest.param("4111 1111 1111 1111", "[BANK_CARD]", id="card-spaces"),
    pytest.param("4111-1111-1111-1111", "[BANK_CARD]", id="card-dashes"),
    pytest.param("Amex 3782 822463 10005", "Amex [BANK_CARD]", id="card-amex-4-6-5"),
    pytest.param("卡号6222021234567890128，", "卡号[BANK_CARD]，", id="card-unionpay-19-cjk"),
    pytest.param("5555 5555 5555 4444 exp 12/27", "[BANK_CARD] exp 12/27", id="card-mc-expiry"),
    # Phones
    pytest.param("手机13800138000", "手机[PHONE]", id="cn-mobile-cjk"),
    pytest.param("call +86 138 0013 8000 now", "call [PHONE] now", id="cn-mobile-plus86"),
    pytest.param("0086-138-0013-8000", "[PHONE]", id="cn-mobile-0086"),
    pytest.param("+8613800138000", "[PHONE]", id="cn-mobile-compact"),
    pytest.param("电话：010-12345678。", "电话：[PHONE]。", id="cn-landline-beijing"),
    pytest.param("0755-8888 8888", "[PHONE]", id="cn-landline-shenzhen"),
    pytest.param("(010) 6552 1234", "[PHONE]", id="cn-landline-parentheses"),
    pytest.param("London +44 20 7946 0958.", "London [PHONE].", id="intl-uk"),
    pytest.param("US: +1 (650) 253-0000", "US: [PHONE]", id="intl-us"),
    pytest.param("手机：１３８００１３８０００", "手机：[PHONE]", id="cn-mobile-full-width"),
    # Emails
    pytest.param("mail a@example.com.", "mail [EMAIL].", id="email-plain"),
    pytest.param("john.doe+tag@mail.example.co.uk", "[EMAIL]", id="email-plus-subdomains"),
    pytest.param("联系邮箱：zhang_san@163.com。", "联系邮箱：[EMAIL]。", id="email-cjk"),
    pytest.param("13800138000@qq.com", "[EMAIL]", id="email-digits-local-part"),
    pytest.param("<mailto:x-y@foo-bar.io>", "<mailto:[EMAIL]>", id="email-mailto"),
    # IP addresses
    pytest.param("host 192.168.1.10:8080", "host [IP_ADDRESS]:8080", id="ipv4-port"),
    pytest.param("from 8.8.8.8.", "from [IP_ADDRESS].", id="ipv4-end-of-sentence"),
    pytest.param("addr fe80::1ff:fe23:4567:890a.", "addr [IP_ADDRESS].", id="ipv6"),
    pytest.param("[2001:db8::1]:443", "[[IP_ADDRESS]]:443", id="ipv6-bracketed"),
    pytest.param("::ffff:10.0.0.1", "[IP_ADDRESS]", id="ipv6-mapped-ipv4"),
    # Several at once
    pytest.param(
        f"张三，{ID_VALID}，13800138000，zs@example.cn",
        "张三，[ID_NUMBER]，[PHONE]，[EMAIL]",
        id="mixed-cjk-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts(text: str, expected: str) -> None:
    assert redact_text(text).text == expected


NEAR_MISSES = [
    pytest.param(f"身份证号{ID_BAD_CHECK}请核对", id="id-bad-check-digit"),
    pytest.param("110101199013074573", id="id-month-13"),
    pytest.param("1101011990030745731", id="id-inside-19-digits"),
    pytest.param("4111111111111112", id="card-fails-luhn"),
    pytest.param("4111 1111 1111 1112", id="card-grouped-fails-luhn"),
    pytest.param("order 2024112512345678", id="order-number-date-prefix"),
    pytest.param("1234567890123452", id="luhn-valid-but-no-issuer-prefix"),
    pytest.param("total 1,234,567.89", id="amount-thousands"),
    pytest.param("¥12345678.90", id="amount-8-digits-decimals"),
    pytest.param("2024-01-15", id="date-iso"),
    pytest.param("2024/01/15 10:30:00", id="timestamp-slashes"),
    pytest.param("2024-01-15T10:30:00Z", id="timestamp-iso"),
    pytest.param("ts 1700000000", id="unix-seconds"),
    pytest.param("ts 1700000000123", id="unix-millis"),
    pytest.param("version 1.2.3", id="version-3-part"),
    pytest.param("v10.0.19041.1", id="version-4-part"),
    pytest.param("Chrome 120.0.6099.109", id="version-chrome"),
    pytest.param("v1.2.3.4", id="version-v-prefixed-looks-like-ip"),
    pytest.param("192.168.1.256", id="ipv4-octet-out-of-range"),
    pytest.param("at 12:30:45", id="time"),
    pytest.param("MAC 00:1a:2b:3c:4d:5e", id="mac-address"),
    pytest.param("std::vector<int> a::b", id="cpp-paths"),
    pytest.param("room 1203, code 95588, pin 123456", id="short-numbers"),
    pytest.param("user@localhost", id="email-without-tld"),
    pytest.param("@handle and a@b", id="at-signs"),
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_leaves_near_misses_alone(text: str) -> None:
    result = redact_text(text)
    assert result.text == text
    assert result.counts == {}


def test_counts_per_kind() -> None:
    text = "13800138000, 13900139000, a@b.cn, 4111 1111 1111 1111"
    assert redact_text(text).counts == {"PHONE": 2, "EMAIL": 1, "BANK_CARD": 1}


def test_find_pii_spans_positions() -> None:
    text = f"身份证号{ID_VALID}，邮箱 a@b.cn"
    spans = find_pii_spans(text)
    assert [(text[s.start : s.end], s.kind) for s in spans] == [
        (ID_VALID, "ID_NUMBER"),
        ("a@b.cn", "EMAIL"),
    ]


def test_overlapping_spans_merge_into_union() -> None:
    class Fake:
        name = kind = "FAKE"
        priority = 99

        def find(self, text: str) -> list[Span]:
            i = text.find("0013")
            return [Span(i, i + 9, "FAKE")] if i >= 0 else []  # 0013 8000 + space

    # The fake span overlaps the phone's tail and runs past it: the union is redacted,
    # named after the longer (phone) span.
    text = "13800138000 1"
    result = redact_text(text, recognizers=[*RECOGNIZERS, Fake()])
    assert result.text == "[PHONE]1"
    assert result.counts == {"PHONE": 1}


def test_registry_accepts_new_recognizers() -> None:
    class Passport:
        name = "cn_passport"
        kind = "PASSPORT"
        priority = 10

        def find(self, text: str) -> list[Span]:
            i = text.find("E12345678")
            return [Span(i, i + 9, self.kind)] if i >= 0 else []

    assert redact_text("no. E12345678", recognizers=[Passport()]).text == "no. [PASSPORT]"


def test_long_digit_runs_cost_bounded_work() -> None:
    text = "1 " * 20_000 + "x" * 50_000
    result = redact_text(text)  # must not go quadratic; the suite's time budget enforces it
    assert len(result.text) == len(text)


# --- false positives measured on generated near-misses -----------------------------------


def _rng() -> random.Random:
    return random.Random(20241125)


def _flagged(samples: list[str]) -> int:
    return sum(1 for s in samples if find_pii_spans(f"No. {s} ok"))


def _luhn_failing(rng: random.Random, length: int) -> str:
    while True:
        number = str(rng.randint(10 ** (length - 1), 10**length - 1))
        if not luhn.is_valid(number):
            return number


def test_false_positives_order_numbers_failing_luhn() -> None:
    rng = _rng()
    samples = [_luhn_failing(rng, rng.choice([13, 14, 15, 16, 17, 19])) for _ in range(3000)]
    assert _flagged(samples) == 0


def test_false_positives_ids_with_bad_check_digit() -> None:
    rng = _rng()
    samples = []
    for _ in range(3000):
        born = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 25000))
        body = f"{rng.randint(110000, 659999)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
        good = ric.calc_check_digit(body + "0")
        bad = rng.choice([d for d in "0123456789X" if d != good])
        samples.append(body + bad)
    assert _flagged(samples) == 0


def test_false_positives_date_prefixed_order_numbers() -> None:
    rng = _rng()
    samples = [
        f"{rng.randint(2015, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        + "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 10, 11, 12])))
        for _ in range(3000)
    ]
    assert _flagged(samples) == 0


def test_false_positives_uniform_random_16_digit_numbers() -> None:
    # Nothing distinguishes a random 16-digit number that happens to pass Luhn and start
    # like a card from a card. The expected rate is 10% (Luhn) x ~47% (issuer prefixes).
    rng = _rng()
    samples = [str(rng.randint(10**15, 10**16 - 1)) for _ in range(3000)]
    assert _flagged(samples) / len(samples) < 0.06


def test_false_positives_amounts_dates_versions() -> None:
    rng = _rng()
    samples = []
    for _ in range(1000):
        amount = rng.randint(0, 10**9) + rng.randint(0, 99) / 100
        day = datetime.datetime(2000, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 10**9))
        samples += [
            f"{amount:,.2f}",
            f"{amount:.2f}",
            f"¥{amount:,.2f}",
            f"{day:%Y-%m-%d}",
            f"{day:%Y/%m/%d %H:%M:%S}",
            f"{day:%Y-%m-%dT%H:%M:%S}Z",
            f"{day:%d.%m.%Y}",
            f"{day:%Y%m%d%H%M%S}",
            str(int(day.timestamp())),
            str(int(day.timestamp() * 1000)),
            f"{rng.randint(0, 30)}.{rng.randint(0, 30)}.{rng.randint(0, 9999)}",
            str(rng.randint(0, 999_999)),
        ]
    assert _flagged(samples) == 0


# --- streaming ----------------------------------------------------------------------------

STREAM_TEXTS = [
    f"身份证号{ID_VALID}请核对，电话 +86 138 0013 8000。",
    "Mail john.doe+tag@mail.example.co.uk or call 010-12345678 today.",
    "card 4111 1111 1111 1111 then 2024-01-15 10:30:00 and 1,234,567.89",
    "hosts 192.168.1.10, fe80::1ff:fe23:4567:890a and v1.2.3.4\nnext line 13900139000",
]


def _stream(text: str, cuts: list[int]) -> str:
    redactor = StreamingRedactor()
    bounds = [0, *sorted(cuts), len(text)]
    out = [redactor.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    return "".join(out) + redactor.flush()


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_stream_every_single_split_point(text: str) -> None:
    expected = redact_text(text).text
    for cut in range(len(text) + 1):
        assert _stream(text, [cut]) == expected, cut


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_stream_one_character_at_a_time(text: str) -> None:
    assert _stream(text, list(range(len(text)))) == redact_text(text).text


def test_stream_releases_words_early_and_holds_numbers() -> None:
    redactor = StreamingRedactor()
    # A finished word is out at once; the last word waits (it could become an email).
    assert redactor.feed("Hello world, call ") == "Hello world, call "
    assert redactor.feed("138") == ""
    assert redactor.feed("0013 8000") == ""  # a space between digits may be inside a number
    assert redactor.feed(" now") == "[PHONE] "
    assert redactor.flush() == "now"
    assert redactor.counts == {"PHONE": 1}


def test_stream_chinese_text_flows_through() -> None:
    redactor = StreamingRedactor()
    assert redactor.feed("你好，这是一个测试") == "你好，这是一个测试"


def test_stream_hold_back_is_bounded() -> None:
    redactor = StreamingRedactor()
    for _ in range(5000):
        redactor.feed("1 ")
        assert len(redactor.held_back) <= MAX_SEGMENT + MAX_GAP + 1


# Fragments that make split-sensitive texts: PII pieces, separators, CJK, line breaks.
_FRAGMENTS = [
    ID_VALID, ID_X, "１１０", "13800138000", "+86 ", "0086", "138", " ", "  ", "-", ".", "@",
    "a@b.cn", "john", ".doe", "example.com", "4111", "1111", "192.168.", "1.10", "fe80::1",
    ":", "2024-01-15", "10:30", "，", "号", "\n", "x", "(010)", "6552", ",", "ab",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_FRAGMENTS), max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_stream_equals_batch_for_any_chunking(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    cuts = [c for c in cuts if c <= len(text)]
    assert _stream(text, cuts) == redact_text(text).text


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=120), cuts=st.lists(st.integers(0, 120), max_size=10))
def test_stream_equals_batch_for_arbitrary_unicode(text: str, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(text)]
    assert _stream(text, cuts) == redact_text(text).text


def test_stream_equals_batch_across_forced_cuts() -> None:
    # Longer than MAX_SEGMENT without a natural cut, with PII near the forced cut.
    text = "1 " * 140 + "13800138000 " + "4111 1111 1111 1111 " + "2 " * 100
    expected = redact_text(text).text
    rng = _rng()
    for _ in range(30):
        assert _stream(text, rng.sample(range(len(text)), 15)) == expected
