"""A TLS server on loopback with a self-signed certificate, counting the connections made to it.

For the failures that only real TLS shows: a client that does not trust the certificate must fail in the
handshake, say so, and not come back (``connections`` counts every attempt, handshake or not). A client that
trusts ``certfile`` gets ``{"ok": true}`` to any request, which proves the server itself works.

The certificate is made by the ``cryptography`` package when it is installed, else by the ``openssl``
command; ``self_signed_certificate`` raises ``CertificateToolMissing`` when there is neither.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BODY = b'{"ok": true}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n" + (
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class CertificateToolMissing(RuntimeError):
    pass


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and ``127.0.0.1``, signed by its own key: ``(certfile, keyfile)``."""
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    try:
        _with_cryptography(certfile, keyfile)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise CertificateToolMissing(
                "cannot make a self-signed certificate: neither the cryptography package nor the openssl command "
                "is available"
            ) from None
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(keyfile),
                "-out",
                str(certfile),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    return certfile, keyfile


def _with_cryptography(certfile: Path, keyfile: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class TlsServer:
    """Accepts on ``127.0.0.1:port``; ``connections`` and ``handshakes_failed`` count what came."""

    def __init__(self, directory: Path) -> None:
        self.certfile, keyfile = self_signed_certificate(directory)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.certfile, keyfile)
        self.connections = 0
        self.handshakes_failed = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def wait_for_failed_handshakes(self, count: int, timeout: float = 10.0) -> int:
        """``handshakes_failed`` once it reaches ``count`` (or after ``timeout``): the client may give up on a
        handshake before this server's thread has counted its side of it."""
        deadline = time.monotonic() + timeout
        while self.handshakes_failed < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.handshakes_failed

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.certfile))

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            conn.settimeout(2)
            try:
                tls = self._context.wrap_socket(conn, server_side=True)  # the handshake happens here
            except OSError:  # ssl.SSLError included: the client refused our certificate
                with self._lock:
                    self.handshakes_failed += 1
                conn.close()
                continue
            with tls, contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                tls.sendall(ANSWER)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(timeout=2)
