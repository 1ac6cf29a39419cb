"""Image URLs: SSRF-safe fetching against real sockets (tests/fakeweb.py mocks only DNS
answers and where "internet" addresses are routed)."""

from __future__ import annotations

import gzip
import time

import pytest

from assistant.safety.fetch import (
    FetchPolicy,
    FetchRefused,
    address_refusal,
    fetch_image,
    host_allowed,
    policy_for,
)
from tests import screens

PNG = screens.png_bytes()
HTTPS_ONLY = FetchPolicy(allowed_domains=(".example.com", ".example.org"))
WITH_HTTP = FetchPolicy(allowed_domains=(".example.com", ".example.org"), allow_http=True)


def refused(url: str, policy: FetchPolicy = WITH_HTTP) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        fetch_image(url, policy=policy)
    error = caught.value
    assert 400 <= error.status < 500 and error.message and error.code
    return error


# --- the loopback trap: a refused URL never opens a connection -----------------------------

# Every form below must be refused before any connection is made. The fake network sends
# any connection to an address it does not serve to a real listener on 127.0.0.1.
LITERAL_FORMS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:80/",
    "http://2130706433/",  # decimal
    "http://017700000001/",  # octal
    "http://0x7f000001/",  # hex
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/",  # NAT64
    "http://[2002:7f00:1::]/",  # 6to4
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://①②⑦.⓪.⓪.①/",  # circled digits fold to 127.0.0.1
    "http://127。0。0。1/",  # ideographic full stops
    "http://ｌｏｃａｌｈｏｓｔ/",
    "http://localhost/",
    "http://localhost./",
    "http://images.example.com@127.0.0.1/",  # userinfo
    "http://127.0.0.1#@images.example.com/",
    "http://127.0.0.1\\@images.example.com/",  # backslash
    "http://images.example.com\t.127.0.0.1/",
    "http://images.example.com%2f@127.0.0.1/",
    "http://%31%32%37.0.0.1/",
    "gopher://127.0.0.1:70/_GET",
    "file:///etc/passwd",
    "dict://127.0.0.1:11211/stat",
    "ftp://images.example.com/a.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "//127.0.0.1/",
    "http://images.example.com:8080/a.png",  # non-default port
    "http:/\\/127.0.0.1/",
]

# Names the attacker controls resolve to internal addresses.
DNS_FORMS = {
    "loopback.example.com": ["127.0.0.1"],
    "zero.example.com": ["0.0.0.0"],
    "metadata.example.com": ["169.254.169.254"],
    "private10.example.com": ["10.0.0.5"],
    "private172.example.com": ["172.16.3.4"],
    "private192.example.com": ["192.168.1.1"],
    "cgnat.example.com": ["100.64.0.1"],
    "multicast.example.com": ["224.0.0.1"],
    "broadcast.example.com": ["255.255.255.255"],
    "reserved.example.com": ["240.0.0.1"],
    "benchmark.example.com": ["198.18.0.1"],
    "v6loopback.example.com": ["::1"],
    "v6unspecified.example.com": ["::"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "mapped10.example.com": ["::ffff:10.1.2.3"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
    "nat64local.example.com": ["64:ff9b:1::1"],
    "sixtofour.example.com": ["2002:c0a8:0101::1"],  # 6to4 of 192.168.1.1
    "teredo.example.com": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    "ula.example.com": ["fd00:ec2::254"],
    "linklocal6.example.com": ["fe80::1"],
    "scoped.example.com": ["fe80::1%eth0"],
    "sitelocal.example.com": ["fec0::1"],
    "mcast6.example.com": ["ff02::1"],
    "docs6.example.com": ["2001:db8::1"],
    "translated.example.com": ["::ffff:0:7f00:1"],  # IPv4-translated 127.0.0.1
    "translated-public.example.com": ["::ffff:0:808:808"],  # translated, even if public
    "docs3fff.example.com": ["3fff::1"],  # documentation (RFC 9637)
    "srv6.example.com": ["5f00::1"],  # SRv6 SID (RFC 9602)
    "reserved6.example.com": ["4000::1"],  # outside 2000::/3
    # One bad address among good ones refuses the whole name.
    "mixed.example.com": ["93.184.216.200", "127.0.0.1"],
    "mixed6.example.com": ["2606:2800:220:1:248:1893:25c8:1946", "::1"],
}

REDIRECT_TARGETS = [
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://loopback.example.com/",
    "http://2130706433/",
    "http://169.254.169.254/latest/meta-data/",
    "//127.0.0.1/",
    "http://images.example.com@127.0.0.1/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
]


def test_no_refused_url_ever_connects(fakeweb):
    trap = fakeweb.set_trap()
    # Positive control: a name we route to the trap does reach it, so zero below means
    # "never tried", not "could not have noticed".
    fakeweb.dns("control.example.com", "93.184.216.250")
    fakeweb.routes[("93.184.216.250", 80)] = ("127.0.0.1", trap.port)
    refused("http://control.example.com/")
    deadline = time.monotonic() + 2
    while not trap.accepted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(trap.accepted) == 1
    trap.accepted.clear()
    fakeweb.connects.clear()

    for name, answers in DNS_FORMS.items():
        fakeweb.dns(name, *answers)
    attempts = list(LITERAL_FORMS) + [f"http://{name}/a.png" for name in DNS_FORMS]
    for i, target in enumerate(REDIRECT_TARGETS):
        attempts.append(fakeweb.redirect(f"https://images.example.com/hop{i}", target))
    fakeweb.rebinding("rebind.example.com", "127.0.0.1", "93.184.216.201")
    attempts.append("http://rebind.example.com/a.png")

    codes = {}
    for url in attempts:
        codes[url] = refused(url).code
    time.sleep(0.3)  # let the trap's accept loop see any late connection
    assert trap.accepted == [], trap.accepted
    # Only the fake public servers (the redirect hops) were ever connected to.
    public = {a for a, _ in fakeweb.connects}
    assert public <= {fakeweb.names["images.example.com"][0]}, public
    assert len(attempts) >= 70
    assert set(codes.values()) <= {
        "invalid_url",
        "ip_literal_not_allowed",
        "scheme_not_allowed",
        "port_not_allowed",
        "address_not_allowed",
        "domain_not_allowed",
    }, codes


@pytest.mark.parametrize(("name", "answers"), sorted(DNS_FORMS.items()))
def test_internal_dns_answers_are_403(fakeweb, name, answers):
    fakeweb.dns(name, *answers)
    error = refused(f"https://{name}/a.png", HTTPS_ONLY)
    assert (error.code, error.status) == ("address_not_allowed", 403)
    assert fakeweb.connects == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.1.1",
        "172.31.255.255",
        "192.168.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "0.0.0.0",
        "192.0.0.192",
        "::1",
        "::ffff:169.254.169.254",
        "64:ff9b::10.0.0.1",
        "2002:0a00:0001::",
        "2001::1",
        "fd00:ec2::254",
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1 (::ffff:0:0:0/96)
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
        "::ffff:0:808:808",  # IPv4-translated, refused whatever it translates to
        "3fff::1",  # documentation (3fff::/20)
        "3fff:fff:ffff::1",
        "5f00::1",  # SRv6 SIDs (5f00::/16)
        "5f00:ffff::1",
        "100:0:0:1::1",  # dummy prefix
        "2001:db8:ffff::1",
        "4000::1",  # reserved, outside global unicast
        "e000::1",
        "::2",
    ],
)
def test_address_refusal_catalogue(address):
    assert address_refusal(address)


# Refused by the explicit lists alone; the standard library's `is_global` may only add.
QUIRK_SENSITIVE = [
    "::ffff:0:7f00:1",
    "3fff::1",
    "5f00::1",
    "4000::1",
    "64:ff9b:1::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "100.64.0.1",
    "192.0.0.170",
    "198.18.0.1",
    "255.255.255.255",
]


@pytest.mark.parametrize("address", QUIRK_SENSITIVE)
def test_address_refusal_does_not_depend_on_is_global(monkeypatch, address):
    # Python versions disagree about is_global (3.11.7 calls ::ffff:0:7f00:1, 3fff::1 and
    # 5f00::1 global); pretend the standard library calls everything global.
    import ipaddress

    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda self: True))
    monkeypatch.setattr(ipaddress.IPv6Address, "is_global", property(lambda self: True))
    assert address_refusal(address)


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:0808:0808::"],
)
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


# --- what a good fetch looks like, and its limits --------------------------------------------


def test_https_fetch_pins_the_checked_address_and_verifies_the_name(fakeweb):
    url = fakeweb.serve("https://images.example.com/shot.png", PNG)
    assert fetch_image(url, policy=HTTPS_ONLY) == PNG
    assert fakeweb.resolves == ["images.example.com"]  # resolved once
    assert fakeweb.connects == [(fakeweb.names["images.example.com"][0], 443)]


def test_dns_rebinding_cannot_swap_the_address_after_the_check(fakeweb):
    fakeweb.host("images.example.com")
    public = fakeweb.names["images.example.com"][0]
    fakeweb.serve("https://rebind2.example.com/a.png", PNG)
    fakeweb.rebinding("rebind2.example.com", public, "127.0.0.1")
    assert fetch_image("https://rebind2.example.com/a.png", policy=HTTPS_ONLY) == PNG
    assert fakeweb.resolves == ["rebind2.example.com"]
    assert [a for a, _ in fakeweb.connects] == [public]


def test_certificate_for_another_name_is_refused(fakeweb):
    fakeweb.serve("https://images.example.net/a.png", PNG)
    policy = FetchPolicy(allowed_domains=("images.example.net",))
    error = refused("https://images.example.net/a.png", policy)
    assert error.code == "tls_failed"


def test_content_type_header_is_ignored_bytes_decide(fakeweb):
    fakeweb.serve(
        "https://images.example.com/lie.html", PNG, headers=[("Content-Type", "text/html")]
    )
    assert fetch_image("https://images.example.com/lie.html", policy=HTTPS_ONLY) == PNG
    fakeweb.serve(
        "https://images.example.com/fake.png",
        b"<html><script>alert(1)</script></html>",
        headers=[("Content-Type", "image/png")],
    )
    assert refused("https://images.example.com/fake.png").status == 415
    fakeweb.serve(
        "https://images.example.com/x.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        headers=[("Content-Type", "image/png")],
    )
    assert refused("https://images.example.com/x.svg").code == "svg_not_allowed"


def test_body_limit_holds_while_streaming_without_content_length(fakeweb):
    sent = []

    def endless():
        yield PNG[:100]
        for _ in range(10_000):
            sent.append(1)
            yield b"\0" * 65536

    fakeweb.serve("https://images.example.com/huge.png", endless)
    policy = FetchPolicy(allowed_domains=(".example.com",), max_bytes=1024 * 1024)
    started = time.monotonic()
    error = refused("https://images.example.com/huge.png", policy)
    assert (error.code, error.status) == ("too_large", 413)
    assert time.monotonic() - started < 5
    assert len(sent) < 200  # we hung up long before 640 MB


def test_lying_content_length_does_not_raise_the_limit(fakeweb):
    fakeweb.serve(
        "https://images.example.com/liar.png",
        lambda: [PNG[:100], b"\0" * (2 * 1024 * 1024)],
        headers=[("Content-Length", "100")],
    )
    policy = FetchPolicy(allowed_domains=(".example.com",), max_bytes=1024 * 1024)
    # http.client stops at the declared 100 bytes: a short, truncated image, not 2 MB.
    data = fetch_image("https://images.example.com/liar.png", policy=policy)
    assert len(data) == 100
    fakeweb.serve(
        "https://images.example.com/big-declared.png",
        PNG,
        headers=[("Content-Length", str(50 * 1024 * 1024))],
    )
    assert refused("https://images.example.com/big-declared.png", policy).status == 413


def test_slow_trickle_hits_the_total_deadline(fakeweb):
    fakeweb.serve(
        "https://images.example.com/slow.png",
        lambda: [PNG[:10]] + [b"\0"] * 100,
        delay=0.2,
        headers=[("Content-Length", "110")],
    )
    policy = FetchPolicy(allowed_domains=(".example.com",), timeout=1.0)
    started = time.monotonic()
    error = refused("https://images.example.com/slow.png", policy)
    assert error.code == "timeout"
    assert time.monotonic() - started < 2.5


def test_redirects_are_followed_rechecked_and_limited(fakeweb):
    fakeweb.serve("https://cdn.example.org/final.png", PNG)
    fakeweb.redirect("https://images.example.com/r1", "https://cdn.example.org/final.png")
    assert fetch_image("https://images.example.com/r1", policy=HTTPS_ONLY) == PNG
    # Relative Location, resolved against the current URL.
    fakeweb.serve("https://images.example.com/dir/final.png", PNG)
    fakeweb.redirect("https://images.example.com/dir/r", "final.png", status=301)
    assert fetch_image("https://images.example.com/dir/r", policy=HTTPS_ONLY) == PNG
    # A chain longer than the limit.
    for i in range(5):
        fakeweb.redirect(f"https://images.example.com/c{i}", f"/c{i + 1}")
    error = refused("https://images.example.com/c0", HTTPS_ONLY)
    assert error.code == "too_many_redirects"
    # Downgrade to http, and a hop to a domain outside the allowlist.
    fakeweb.redirect("https://images.example.com/down", "http://images.example.com/a.png")
    assert refused("https://images.example.com/down", HTTPS_ONLY).code == "scheme_not_allowed"
    fakeweb.serve("https://evil.example.net/a.png", PNG)
    fakeweb.redirect("https://images.example.com/away", "https://evil.example.net/a.png")
    assert refused("https://images.example.com/away", HTTPS_ONLY).code == "domain_not_allowed"
    fakeweb.redirect("https://images.example.com/loop", "https://images.example.com/loop")
    assert refused("https://images.example.com/loop", HTTPS_ONLY).code == "too_many_redirects"


def test_upstream_errors_and_encodings(fakeweb):
    fakeweb.serve("https://images.example.com/missing.png", b"no", status=404)
    error = refused("https://images.example.com/missing.png")
    assert (error.code, error.status) == ("upstream_status", 422)
    fakeweb.serve(
        "https://images.example.com/gz.png",
        gzip.compress(PNG),
        headers=[("Content-Encoding", "gzip")],
    )
    assert refused("https://images.example.com/gz.png").code == "unsupported_encoding"
    fakeweb.serve("https://images.example.com/empty.png", b"")
    assert refused("https://images.example.com/empty.png").status == 415
    assert refused("https://unknown-name.example.com/a.png").code == "dns_failed"


def test_http_needs_allow_http(fakeweb):
    fakeweb.serve("http://images.example.com/a.png", PNG)
    assert refused("http://images.example.com/a.png", HTTPS_ONLY).code == "scheme_not_allowed"
    assert fetch_image("http://images.example.com/a.png", policy=WITH_HTTP) == PNG


def test_empty_allowlist_refuses_everything(fakeweb):
    fakeweb.serve("https://images.example.com/a.png", PNG)
    error = refused("https://images.example.com/a.png", FetchPolicy(allowed_domains=()))
    assert (error.code, error.status) == ("url_fetch_disabled", 403)
    assert fakeweb.resolves == []


def test_host_normalisation_idn_case_and_trailing_dot(fakeweb):
    fakeweb.serve("https://images.example.com/a.png", PNG)
    exact = FetchPolicy(allowed_domains=("images.example.com",))
    for url in (
        "https://IMAGES.Example.COM/a.png",
        "https://images.example.com./a.png",
        "https://ｉｍａｇｅｓ.ｅｘａｍｐｌｅ.ｃｏｍ/a.png",
        "https://images.example.com:443/a.png",
    ):
        assert fetch_image(url, policy=exact) == PNG, url
    fakeweb.serve("https://xn--bcher-kva.example/a.png", PNG)
    idn = FetchPolicy(allowed_domains=("bücher.example",))
    assert fetch_image("https://bücher.example/a.png", policy=idn) == PNG
    assert fakeweb.resolves[-1] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("host", "rule", "allowed"),
    [
        ("example.com", "example.com", True),
        ("a.example.com", "example.com", False),
        ("example.com", "*.example.com", False),
        ("a.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("example.com", ".example.com", True),
        ("a.example.com", ".example.com", True),
        ("evilexample.com", ".example.com", False),
        ("example.com.evil.net", ".example.com", False),
        ("xn--bcher-kva.example", "bücher.example", True),
    ],
)
def test_allowlist_rules(host, rule, allowed):
    assert host_allowed(host, (rule,)) is allowed


def test_domain_outside_allowlist_is_403_without_dns(fakeweb):
    fakeweb.serve("https://images.example.net/a.png", PNG)
    error = refused("https://images.example.net/a.png", HTTPS_ONLY)
    assert (error.code, error.status) == ("domain_not_allowed", 403)
    assert fakeweb.resolves == [] and fakeweb.connects == []


# --- the policy for a request: settings plus the admin's rules -------------------------------


@pytest.mark.django_db
def test_policy_merges_settings_deployment_key_and_group_rules(settings, make_user):
    from django.contrib.auth.models import Group

    from accounts.models import ApiKey
    from policy.models import ImageUrlRule

    settings.IMAGE_URL_ALLOWED_DOMAINS = ["static.example.com"]
    settings.IMAGE_URL_ALLOW_HTTP = False
    partner = make_user("partner")
    other = make_user("other")
    group = Group.objects.create(name="designers")
    partner.groups.add(group)
    key = ApiKey.objects.create(user=partner, prefix="abc", key_hash="0" * 64)
    other_key = ApiKey.objects.create(user=other, prefix="def", key_hash="1" * 64)
    ImageUrlRule.objects.create(domain=".deploy.example", scope="deployment")
    ImageUrlRule.objects.create(domain="keyonly.example", scope="api_key", api_key=key)
    ImageUrlRule.objects.create(domain="*.figma.example", scope="group", group=group)
    ImageUrlRule.objects.create(domain="off.example", scope="deployment", enabled=False)

    def allowed(policy, host):
        return host_allowed(host, policy.allowed_domains)

    partner_policy = policy_for(api_key=key)
    assert allowed(partner_policy, "static.example.com")
    assert allowed(partner_policy, "cdn.deploy.example")
    assert allowed(partner_policy, "keyonly.example")
    assert allowed(partner_policy, "files.figma.example")  # via the key's user's group
    assert not allowed(partner_policy, "off.example")
    other_policy = policy_for(api_key=other_key)
    assert not allowed(other_policy, "keyonly.example")
    assert not allowed(other_policy, "files.figma.example")
    assert allowed(policy_for(user=partner), "files.figma.example")
    assert not policy_for().allow_http
