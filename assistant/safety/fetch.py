"""Fetching a screenshot from a URL a client gave us, without becoming a proxy into our
own network (SSRF).

Safe by construction, in this order, for the first URL and again for every redirect:

1. The URL string: at most 2,048 characters, no control characters, no whitespace, no
   backslashes, no userinfo (``user@host``), scheme ``https`` (``http`` only with
   ``allow_http``), only the scheme's default port, no IP literal in any spelling.
2. The host: IDN to punycode (IDNA 2008 with UTS 46 mapping), lower case, one trailing dot
   dropped, letters-digits-hyphen labels with an alphabetic top-level label, then matched
   against the domain allowlist.
3. The addresses: the name is resolved once and EVERY address must be public (see
   `address_refusal`); one private address among public ones refuses the whole name, so
   DNS answers that mix both cannot pick their target.
4. The connection goes to the checked address itself (pinned: no second lookup that a
   rebinding DNS server could answer differently). For https the socket to that address
   is wrapped with TLS whose SNI and certificate check use the host name.
5. The body is read in chunks under a byte limit and one overall deadline (a watchdog
   closes the socket when it passes, so a server trickling bytes cannot stretch it);
   Content-Length only lets us refuse early, it is never trusted to bound the read.
6. The bytes must start like PNG, JPEG, WebP or GIF; the Content-Type header is ignored.

Nothing is fetched through environment proxies and no cookies or credentials are sent.

The network is reached only through `Network` (resolve, connect, TLS context). Tests swap
`NETWORK` for one that serves "internet" names from loopback servers (tests/fakeweb.py);
every check above still runs for real.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import idna

from .images import refusal_for_unknown, sniff_format

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
CHUNK = 64 * 1024
USER_AGENT = "GlimpseImageFetcher/1.0"


@dataclass(frozen=True)
class FetchPolicy:
    # "example.com" exact; "*.example.com" subdomains only; ".example.com" the domain and
    # its subdomains; an empty tuple refuses every URL.
    allowed_domains: tuple[str, ...]
    allow_http: bool = False
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0  # total seconds: DNS, connect, TLS, headers and body
    max_redirects: int = 3


class FetchRefused(Exception):
    """Why an image URL was not used. `message` is fit for users, `code` for machines,
    `status` is the HTTP status an API should answer with (always 4xx)."""

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.url: str | None = None  # the hop refused (a redirect's target, say)


# --- the edge: the only place that touches DNS and sockets ------------------------------


class Network:
    """Real DNS and real sockets. Swapped in tests for tests/fakeweb.py's FakeNetwork."""

    def resolve(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [info[4][0] for info in infos]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


NETWORK: Network = Network()

# getaddrinfo has no timeout of its own; it runs here so the deadline still holds.
_dns_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="glimpse-dns")


# --- step 1 and 2: the URL and the host ----------------------------------------------------

_FORBIDDEN_CHARS = re.compile(
    r"[\x00-\x20\x7f-\x9f\\\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # ASCII (punycode), lower case, no trailing dot
    port: int
    path: str  # path and query, as sent in the request line


def _refuse_url(reason: str) -> FetchRefused:
    return FetchRefused(f"The image URL is not valid: {reason}.", "invalid_url", 400)


def normalise_host(raw: str) -> str:
    """ASCII lower-case host name, or FetchRefused. IP literals are refused here."""
    host = raw
    if host.endswith("."):
        host = host[:-1]  # "example.com." is the same name; keep the comparison honest
    if not host:
        raise _refuse_url("it has no host name")
    if host.startswith("["):
        raise FetchRefused(
            "Image URLs must use a host name, not an IP address.", "ip_literal_not_allowed", 400
        )
    try:
        # UTS 46 maps full-width and upper-case forms first, so "ｅｘａｍｐｌｅ.com" and
        # "EXAMPLE.com" become the name they display as; then IDNA 2008 to punycode.
        host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise _refuse_url("the host name is not a valid domain name") from None
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or any(not _LABEL.fullmatch(label) for label in labels):
        raise _refuse_url("the host name is not a valid domain name")
    # 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1: the C library reads these as addresses.
    # A real domain's top-level label is never numeric, so none of them is a name.
    if _NUMERIC_LABEL.fullmatch(labels[-1]) or _is_ip(host):
        raise FetchRefused(
            "Image URLs must use a host name, not an IP address.", "ip_literal_not_allowed", 400
        )
    if len(labels) < 2:
        raise _refuse_url("the host name must be a full domain name")
    return host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_target(url: str, *, policy: FetchPolicy) -> Target:
    if not isinstance(url, str) or not url:
        raise _refuse_url("it is empty")
    if len(url) > MAX_URL_CHARS:
        raise _refuse_url(f"it is longer than {MAX_URL_CHARS} characters")
    if _FORBIDDEN_CHARS.search(url):
        # Spaces, tabs, newlines, backslashes and invisible characters are where parsers
        # disagree about where the host ends; a real image URL needs none of them.
        raise _refuse_url("it contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse_url("it cannot be parsed") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if policy.allow_http else ("https",)
    if scheme not in allowed_schemes:
        wanted = " or ".join(allowed_schemes)
        raise FetchRefused(f"Image URLs must start with {wanted}://.", "scheme_not_allowed", 400)
    if "@" in parts.netloc:
        raise _refuse_url("user names and passwords in URLs are not accepted")
    if port is not None and port != DEFAULT_PORTS[scheme]:
        raise FetchRefused(
            f"Image URLs must use the standard {scheme} port.", "port_not_allowed", 400
        )
    # urlsplit lower-cases .hostname and strips IPv6 brackets; read the raw host instead
    # so "[::1]" is seen as the literal it is.
    raw_host = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
    host = normalise_host(raw_host)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=scheme, host=host, port=DEFAULT_PORTS[scheme], path=path)


def normalise_rule(rule: str) -> tuple[str, str] | None:
    """('exact'|'sub'|'both', ascii domain) for an allowlist entry, None if unusable."""
    rule = rule.strip()
    kind = "exact"
    if rule.startswith("*."):
        kind, rule = "sub", rule[2:]
    elif rule.startswith("."):
        kind, rule = "both", rule[1:]
    try:
        return kind, normalise_host(rule)
    except FetchRefused:
        return None


def host_allowed(host: str, allowed_domains: tuple[str, ...]) -> bool:
    for entry in allowed_domains:
        rule = normalise_rule(entry)
        if rule is None:
            continue
        kind, domain = rule
        is_sub = host.endswith("." + domain)
        if (kind in ("exact", "both") and host == domain) or (kind in ("sub", "both") and is_sub):
            return True
    return False


# --- step 3: addresses --------------------------------------------------------------------

_BLOCKED_V4 = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, incl. 169.254.169.254 cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (incl. 192.0.0.192 Oracle metadata)
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. 255.255.255.255
    )
]
_BLOCKED_V6 = [
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # unspecified, loopback and the old IPv4-compatible form ::a.b.c.d
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "100:0:0:1::/64",  # dummy prefix (RFC 9780)
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 segment identifiers (RFC 9602)
        "fc00::/7",  # unique local, incl. fd00:ec2::254 (AWS metadata over IPv6)
        "fe80::/10",  # link-local
        "fec0::/10",  # old site-local
        "ff00::/8",  # multicast
    )
]
# The only IPv6 space IANA hands out for global unicast. Anything outside it (the rest of
# ::/8, 4000::/3 with 5f00::/16, e000::/4 ...) is reserved or special-purpose; refusing it
# outright keeps the check the same whatever a Python version's `is_global` says.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through a translation mechanism."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def address_refusal(address: str) -> str | None:
    """Why `address` must not be contacted, or None if it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "not an IP address"
    if "%" in address:
        return "scoped (link-local) address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            reason = address_refusal(str(embedded))
            return f"embeds {reason}" if reason else None
        if any(ip in net for net in _BLOCKED_V6):
            return "private or reserved IPv6 address"
        if ip not in _GLOBAL_UNICAST_V6:
            return "IPv6 address outside global unicast (2000::/3)"
    elif any(ip in net for net in _BLOCKED_V4):
        return "private or reserved IPv4 address"
    # The lists above decide on their own (they are what the tests pin down). This only
    # ever refuses more: whatever this Python's standard library also calls non-global.
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


# --- the fetch ------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise _timeout()
        return remaining


def _timeout() -> FetchRefused:
    return FetchRefused("The image URL took too long to answer.", "timeout", 422)


def _resolve(host: str, port: int, deadline: _Deadline) -> list[str]:
    future = _dns_pool.submit(NETWORK.resolve, host, port)
    try:
        addresses = future.result(timeout=deadline.left())
    except FutureTimeout:
        raise _timeout() from None
    except (OSError, UnicodeError):
        raise FetchRefused(
            "The image URL's host name could not be found.", "dns_failed", 422
        ) from None
    if not addresses:
        raise FetchRefused("The image URL's host name could not be found.", "dns_failed", 422)
    return list(dict.fromkeys(addresses))


def _checked_addresses(target: Target, policy: FetchPolicy, deadline: _Deadline) -> list[str]:
    if not host_allowed(target.host, policy.allowed_domains):
        raise FetchRefused(
            "Images can only be fetched from approved domains.", "domain_not_allowed", 403
        )
    addresses = _resolve(target.host, target.port, deadline)
    for address in addresses:
        if address_refusal(address):
            raise FetchRefused(
                "The image URL points to an address that is not allowed.",
                "address_not_allowed",
                403,
            )
    return addresses


def _open(target: Target, address: str, deadline: _Deadline) -> socket.socket:
    try:
        sock = NETWORK.connect(address, target.port, deadline.left())
    except TimeoutError:
        raise _timeout() from None
    except OSError:
        raise FetchRefused(
            "The image URL's server could not be reached.", "connect_failed", 422
        ) from None
    if target.scheme != "https":
        return sock
    try:
        sock.settimeout(deadline.left())
        # SNI and the certificate check are against the name, not the pinned address.
        return NETWORK.tls_context().wrap_socket(sock, server_hostname=target.host)
    except TimeoutError:
        sock.close()
        raise _timeout() from None
    except (ssl.SSLError, ssl.CertificateError, OSError):
        sock.close()
        raise FetchRefused(
            "The image URL's server did not present a valid certificate.", "tls_failed", 422
        ) from None


class _PinnedConnection(http.client.HTTPConnection):
    """http.client over a socket we opened ourselves: it never resolves or connects."""

    def __init__(self, host: str, sock: socket.socket) -> None:
        super().__init__(host)
        self.sock = sock

    def connect(self):  # pragma: no cover - only reached if the socket was dropped
        raise ConnectionError("pinned connection has no socket")


def _request_once(target: Target, address: str, policy: FetchPolicy, deadline: _Deadline):
    """(status, location, body). Body only for 200."""
    sock = _open(target, address, deadline)
    # The deadline is absolute: per-read timeouts alone would let a server that sends one
    # byte every few seconds keep us forever.
    watchdog = threading.Timer(deadline.left(), _shutdown, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    connection = _PinnedConnection(target.host, sock)
    try:
        try:
            sock.settimeout(deadline.left())
            connection.putrequest("GET", target.path, skip_accept_encoding=True)
            connection.putheader("Accept", "image/png, image/jpeg, image/webp, image/gif")
            connection.putheader("Accept-Encoding", "identity")
            connection.putheader("User-Agent", USER_AGENT)
            connection.endheaders()
            response = connection.getresponse()
        except FetchRefused:
            raise
        except TimeoutError:
            raise _timeout() from None
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= deadline.end:
                raise _timeout() from None
            raise FetchRefused(
                "The image URL's server sent a broken answer.", "bad_response", 422
            ) from None
        if response.status in (301, 302, 303, 307, 308):
            return response.status, response.getheader("Location"), b""
        if response.status != 200:
            raise FetchRefused(
                f"The image URL answered with HTTP status {response.status}.",
                "upstream_status",
                422,
            )
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", ""):
            raise FetchRefused(
                "The image URL sent a compressed body, which is not accepted.",
                "unsupported_encoding",
                422,
            )
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > policy.max_bytes:
            raise _too_large(policy)
        return 200, None, _read_body(response, sock, policy, deadline)
    finally:
        watchdog.cancel()
        connection.close()
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _too_large(policy: FetchPolicy) -> FetchRefused:
    limit = policy.max_bytes / (1024 * 1024)
    return FetchRefused(f"The image at that URL is larger than {limit:g} MB.", "too_large", 413)


def _read_body(response, sock, policy: FetchPolicy, deadline: _Deadline) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            sock.settimeout(deadline.left())
            chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        except FetchRefused:
            raise
        except TimeoutError:
            raise _timeout() from None
        except (OSError, http.client.HTTPException, ValueError):
            if time.monotonic() >= deadline.end:
                raise _timeout() from None
            raise FetchRefused("The image download was interrupted.", "bad_response", 422) from None
        if not chunk:
            break
        total += len(chunk)
        if total > policy.max_bytes:
            raise _too_large(policy)
        chunks.append(chunk)
    if time.monotonic() >= deadline.end:
        raise _timeout()
    return b"".join(chunks)


def _check_content(data: bytes) -> None:
    if not data:
        raise FetchRefused("The image URL returned an empty body.", "not_an_image", 415)
    if sniff_format(data) is None:
        rejected = refusal_for_unknown(data)
        raise FetchRefused(rejected.message, rejected.code, 415)


def fetch_image(url: str, *, policy: FetchPolicy) -> bytes:
    """The raw bytes of the image at `url`, or FetchRefused. The caller then runs
    `sanitise_upload` on them, like on any upload."""
    if not policy.allowed_domains:
        raise FetchRefused(
            "Fetching images from URLs is turned off on this server.", "url_fetch_disabled", 403
        )
    deadline = _Deadline(policy.timeout)
    current = url
    for hop in range(policy.max_redirects + 1):
        try:
            body, location = _fetch_hop(current, policy, deadline)
        except FetchRefused as exc:
            exc.url = current
            raise
        if body is not None:
            return body
        if hop == policy.max_redirects:
            break
        current = location
    raise FetchRefused(
        f"The image URL redirected more than {policy.max_redirects} times.",
        "too_many_redirects",
        422,
    )


def _fetch_hop(url: str, policy: FetchPolicy, deadline: _Deadline) -> tuple[bytes | None, str]:
    """One request: (the image's bytes, "") or (None, where it redirects to)."""
    target = parse_target(url, policy=policy)
    addresses = _checked_addresses(target, policy, deadline)
    # One attempt, at the first address: all of them passed the same checks, and trying
    # others would multiply the time a slow host costs us.
    status, location, body = _request_once(target, addresses[0], policy, deadline)
    if status == 200:
        _check_content(body)
        return body, ""
    if not location:
        raise FetchRefused("The image URL redirected without saying where.", "bad_redirect", 422)
    return None, urljoin(target.url, location.strip())


# --- the policy for a request ---------------------------------------------------------------


def policy_for(*, user=None, api_key=None) -> FetchPolicy:
    """Settings merged with the policy app's rules for this deployment, this API key and
    the groups of its user (or of `user`). Rules only ever add domains."""
    from django.conf import settings

    from policy.selectors import image_url_domains

    if user is None and api_key is not None:
        user = getattr(api_key, "user", None)
    domains = [*settings.IMAGE_URL_ALLOWED_DOMAINS, *image_url_domains(user=user, api_key=api_key)]
    return FetchPolicy(
        allowed_domains=tuple(dict.fromkeys(d.strip().lower() for d in domains if d.strip())),
        allow_http=settings.IMAGE_URL_ALLOW_HTTP,
        max_bytes=settings.IMAGE_URL_MAX_BYTES,
        timeout=settings.IMAGE_URL_TIMEOUT,
        max_redirects=settings.IMAGE_URL_MAX_REDIRECTS,
    )
