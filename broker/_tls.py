"""TLS for MQTT clients: the context that verifies the broker, and what to say when it fails."""

from __future__ import annotations

import ssl
from pathlib import Path

from tickbus.errors import ConfigError


def client_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A TLS client context that verifies the broker's certificate chain and host name.

    Args:
        ca_file: A PEM file of the CAs to trust, instead of the system's; None
            trusts the system's CAs.

    Returns:
        The context (TLS 1.2 or later, `ssl.create_default_context`'s defaults);
        a socket whose handshake fails is closed at once.

    Raises:
        ConfigError: `ca_file` cannot be read or holds no PEM certificate; the
            reason names the file.
    """
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except ssl.SSLError as exc:  # before OSError, of which it is a subclass
        raise ConfigError(
            f"the CA file {ca_file} holds no usable PEM certificate ({exc.reason or exc})"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the CA file {ca_file}: {exc.strerror}") from exc
    context.sslsocket_class = _ClosedOnFailedHandshake
    return context


def describe_tls_failure(error: ssl.SSLError | ConnectionResetError, ca_file: Path | None) -> str:
    """Say why a TLS connection to the broker failed, naming the CAs that were trusted.

    Args:
        error: What the handshake raised: an `ssl.SSLError`, or the reset of
            a listener that does not speak TLS.
        ca_file: The CA file the context trusted, or None for the system's CAs.

    Returns:
        A reason such as ``"the broker's TLS certificate could not be verified
        with the CA file ca.pem: unable to get local issuer certificate"``.
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        trusted = (
            f"the CA file {ca_file}"
            if ca_file is not None
            else "the system's trusted CAs (name the broker's CA with --mqtt-ca FILE)"
        )
        return (
            f"the broker's TLS certificate could not be verified with {trusted}: "
            f"{error.verify_message}"
        )
    reason = error.reason if isinstance(error, ssl.SSLError) else error.strerror
    return f"the TLS handshake failed ({reason or error}); is this port a TLS listener?"


class _ClosedOnFailedHandshake(ssl.SSLSocket):
    """An `ssl.SSLSocket` that closes itself when its handshake fails.

    paho drops the socket of a failed handshake without closing it; it would
    stay open until the garbage collector closes it, with a ResourceWarning.
    """

    def do_handshake(self, block: bool = False) -> None:
        """Do the TLS handshake; close the socket and re-raise if it fails."""
        try:
            super().do_handshake(block)
        except OSError:
            self.close()
            raise
