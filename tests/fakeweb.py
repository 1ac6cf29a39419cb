"""A pretend internet for tests of image URLs: mock only the edge, run everything else.

`assistant.safety.fetch` reaches the network only through `fetch.NETWORK` (resolve,
connect, TLS context). The `fakeweb` fixture swaps in a `FakeNetwork` whose DNS answers
come from a table, whose "public" addresses are routed to two real servers on loopback
(HTTPS with a certificate from a test CA the fetcher is told to trust, and plain HTTP),
and which records every resolve and connect. All of the fetcher's own logic (URL and host
checks, the address checks, pinning, TLS name verification, redirects, limits, sniffing)
runs for real, over real sockets.

Usage (in a conftest.py, or a test module with `# noqa: F401,F811`:
`from tests.fakeweb import fakeweb`):

    def test_x(fakeweb):
        url = fakeweb.serve("https://images.example.com/a.png", png_bytes)
        fakeweb.dns("evil.example.com", "127.0.0.1")          # a hostile DNS answer
        fakeweb.redirect("https://images.example.com/r", "http://127.0.0.1/")

Names resolve only if registered; anything not routed to a fake server is connected to
for real at the address and port asked for, or to `trap` if one is set (so a test can
prove that a refused address is never contacted: see tests/safety/test_fetch.py).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from assistant.safety import fetch

# Addresses outside every blocked range that the fake hands out for "internet" names.
PUBLIC_ADDRESSES = [f"93.184.216.{n}" for n in range(10, 250)]
TLS_NAMES = [
    "example.com",
    "*.example.com",
    "example.org",
    "*.example.org",
    "xn--bcher-kva.example",
]


@dataclass
class Page:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Callable[[], Iterable[bytes]] = b""
    # Seconds to sleep between body chunks (a slow or trickling server).
    delay: float = 0.0
    hits: int = 0


# --- certificates -----------------------------------------------------------------------


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for TLS_NAMES, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Glimpse test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in TLS_NAMES]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


# --- the servers ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        web: FakeWeb = self.server.web
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        web.requests.append((self.server.scheme, host, self.path))
        page = web.pages.get((self.server.scheme, host, self.path))
        if page is None:
            page = Page(status=404, body=b"not found")
        page.hits += 1
        body = page.body() if callable(page.body) else [page.body]
        try:
            self.send_response(page.status)
            names = {name.lower() for name, _ in page.headers}
            for name, value in page.headers:
                self.send_header(name, value)
            if "content-length" not in names and "transfer-encoding" not in names:
                if isinstance(page.body, bytes):
                    self.send_header("Content-Length", str(len(page.body)))
                else:
                    self.send_header("Connection", "close")
            self.end_headers()
            for chunk in body:
                if page.delay:
                    time.sleep(page.delay)
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the fetcher hung up on purpose (limit reached)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, web: FakeWeb, scheme: str, tls: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.web = web
        self.scheme = scheme
        self.tls = tls

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            sock.settimeout(5)
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                # The fetcher refused our certificate: that is the point of some tests.
                sock.close()
                raise
        return sock, address

    def handle_error(self, request, client_address):
        pass


class Trap:
    """A real listening socket on loopback that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class FakeNetwork(fetch.Network):
    def __init__(self, web: FakeWeb) -> None:
        self.web = web

    def resolve(self, host: str, port: int) -> list[str]:
        self.web.resolves.append(host)
        answers = self.web.names.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        # A list is the same answer every time; a callable can change (DNS rebinding).
        return list(answers()) if callable(answers) else list(answers)

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.web.connects.append((address, port))
        route = self.web.routes.get((address, port))
        if route is None and self.web.trap is not None:
            route = ("127.0.0.1", self.web.trap.port)
        if route is None:
            route = (address, port)
        return super().connect(route[0], route[1], timeout)

    def tls_context(self) -> ssl.SSLContext:
        context = super().tls_context()
        context.load_verify_locations(cafile=str(self.web.ca_path))
        return context


_certificates: tuple[Path, Path, Path] | None = None


def _certificates_once() -> tuple[Path, Path, Path]:
    # Key generation is the slow part; one CA and certificate serve the whole session.
    global _certificates
    if _certificates is None:
        _certificates = _make_certificates(Path(tempfile.mkdtemp(prefix="fakeweb-")))
    return _certificates


class FakeWeb:
    def __init__(self) -> None:
        self.ca_path, cert, key = _certificates_once()
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(cert), str(key))
        self.pages: dict[tuple[str, str, str], Page] = {}
        self.names: dict[str, list[str] | Callable[[], list[str]]] = {}
        self.routes: dict[tuple[str, int], tuple[str, int]] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.resolves: list[str] = []
        self.connects: list[tuple[str, int]] = []
        self.trap: Trap | None = None
        self._free = list(PUBLIC_ADDRESSES)
        self._servers = {
            "https": _Server(self, "https", server_tls),
            "http": _Server(self, "http", None),
        }
        for server in self._servers.values():
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
        self.network = FakeNetwork(self)

    def close(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        if self.trap is not None:
            self.trap.close()

    # --- building the pretend internet ---

    def host(self, name: str) -> str:
        """Give `name` a public-looking address routed to the loopback servers."""
        name = name.lower()
        if name not in self.names:
            address = self._free.pop(0)
            self.names[name] = [address]
            self.routes[(address, 443)] = ("127.0.0.1", self._servers["https"].server_port)
            self.routes[(address, 80)] = ("127.0.0.1", self._servers["http"].server_port)
        return self.names[name][0]

    def dns(self, name: str, *answers: str) -> None:
        """Make `name` resolve to exactly these addresses (nothing is routed)."""
        self.names[name.lower()] = list(answers)

    def rebinding(self, name: str, first: str, then: str) -> None:
        """DNS that answers `first` once and `then` ever after."""
        calls = []

        def answer() -> list[str]:
            calls.append(1)
            return [first] if len(calls) == 1 else [then]

        self.names[name.lower()] = answer

    def serve(
        self,
        url: str,
        body: bytes | Callable[[], Iterable[bytes]] = b"",
        *,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        delay: float = 0.0,
    ) -> str:
        parts = urlsplit(url)
        self.host(parts.hostname)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        page = Page(status=status, headers=list(headers or []), body=body, delay=delay)
        self.pages[(parts.scheme, parts.hostname.lower(), path or "/")] = page
        return url

    def redirect(self, url: str, location: str, *, status: int = 302) -> str:
        return self.serve(url, status=status, headers=[("Location", location)])

    def set_trap(self) -> Trap:
        self.trap = Trap()
        return self.trap

    def contacted(self, address: str) -> bool:
        want = ipaddress.ip_address(address)
        return any(ipaddress.ip_address(a) == want for a, _ in self.connects)


@pytest.fixture
def fakeweb(monkeypatch):
    web = FakeWeb()
    monkeypatch.setattr(fetch, "NETWORK", web.network)
    yield web
    web.close()
