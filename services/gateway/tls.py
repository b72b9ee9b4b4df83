"""TLS on the public ports, from a certificate and key file that may be replaced while running.

Both servers ask for the current certificate at each new handshake, so a renewed certificate
(cert-manager rewriting a mounted Secret, or a new file on a laptop) is served without a
restart; connections already open keep the one they started with. The files are compared by
their status, at most once a second, and read again only when it changed.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import grpc
from pydantic import Field, model_validator

from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
RECHECK_SECONDS = 1.0


class TlsSettings(CommonSettings):
    """The public ports' TLS; both files, or neither for plaintext."""

    tls_cert: Path | None = Field(
        None, description="PEM certificate chain of the public gRPC and HTTP ports; unset serves plaintext")
    tls_key: Path | None = Field(None, description="PEM private key of --tls-cert")

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        return self


def _version(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    """Changes when a file is rewritten or a Secret volume swaps its symlinks."""
    stats = [os.stat(path) for path in paths]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


class Certificate:
    """The key pair in two files, re-read when they change."""

    def __init__(self, cert: Path, key: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.cert, self.key = cert, key
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = clock()
        self._version = _version(cert, key)
        self.pem = (cert.read_bytes(), key.read_bytes())
        self._http: tuple[object, ssl.SSLContext] | None = None

    def refresh(self) -> bool:
        """Re-read the files if they changed (checked at most once a second); whether they did."""
        with self._lock:
            now = self._clock()
            if now - self._checked < RECHECK_SECONDS:
                return False
            self._checked = now
            try:
                version = _version(self.cert, self.key)
                if version == self._version:
                    return False
                pem = (self.cert.read_bytes(), self.key.read_bytes())
                _context(self.cert, self.key)  # a pair that does not match is not taken
            except (OSError, ssl.SSLError) as error:  # e.g. half-written files: keep the old pair
                log.warning("TLS certificate %s not reloaded: %s", self.cert, error)
                return False
            self._version, self.pem = version, pem
        log.info("TLS certificate %s reloaded", self.cert)
        return True

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials that ask for the current pair at each handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config(), lambda: self._grpc_config() if self.refresh() else None)

    def _grpc_config(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self.pem
        return grpc.ssl_server_certificate_configuration([(key, cert)])

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP server's context: the current pair is swapped in at each handshake by the
        SNI callback, which runs before a certificate is chosen, with or without a server name."""
        listening = _context(self.cert, self.key)

        def pick(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
            self.refresh()
            connection.context = self._current()

        listening.sni_callback = pick
        return listening

    def _current(self) -> ssl.SSLContext:
        with self._lock:
            if self._http is None or self._http[0] != self._version:
                self._http = (self._version, _context(self.cert, self.key))
            return self._http[1]


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def certificate(settings: TlsSettings) -> Certificate | None:
    """The configured pair, or None for plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return Certificate(settings.tls_cert, settings.tls_key)
