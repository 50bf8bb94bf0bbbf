"""MQTT connection settings, parsed from ``mqtt[s]://user:pass@host:port[?protocol=3.1.1]`` URLs."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from tickbus.errors import ConfigError

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
"""The broker the entry points use when neither a flag nor the environment names one."""

MQTT_URL_ENV = "TICKBUS_MQTT_URL"
"""The environment variable the entry points read; nothing in `broker` reads it."""

DEFAULT_MQTT_PORT = 1883

DEFAULT_MQTTS_PORT = 8883
"""The port of an ``mqtts://`` URL (MQTT over TLS) that names none."""

MQTT_PROTOCOLS = ("5", "3.1.1")
"""The MQTT versions a client can speak; 5 unless the URL says ``?protocol=3.1.1``."""

_REG_NAME = re.compile(r"[\w.~-]+")  # host names: letters (Unicode too), digits, "._~-"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODE_HINT = "percent-encode '/', '?', '#' and '@' in user names and passwords"


@dataclass(frozen=True, kw_only=True, repr=False)
class MqttSettings:
    """Where and how to connect to the MQTT broker.

    Built at an entry point (from a flag or `MQTT_URL_ENV`) with `from_url`,
    then passed down. The password never appears in `repr` or `url`.

    Attributes:
        host: Host name or IP address; an IPv6 address without brackets (``"::1"``).
        port: TCP port, 1-65535. Default 1883.
        username: User name, or None to connect anonymously.
        password: Password, or None. Needs a `username` (MQTT sends a password
            only along with a user name).
        protocol: ``"5"`` (the default) or ``"3.1.1"``, for a broker that
            speaks only 3.1.1 (the embedded amqtt).
        tls: Connect over TLS and verify the broker's certificate and host
            name (an ``mqtts://`` URL). Default False. `port` stays 1883 unless
            given; `from_url` makes it 8883 for ``mqtts://``.
        ca_file: A PEM file of the CAs to trust instead of the system's, or
            None for the system's. Only with `tls`.

    Raises:
        ConfigError: On construction, when `host` is empty, `port` is not an
            int in 1-65535, a password is given without a user name, or a
            CA file without `tls`.
    """

    host: str
    port: int = DEFAULT_MQTT_PORT
    username: str | None = None
    password: str | None = None
    protocol: str = "5"
    tls: bool = False
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("MQTT host must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigError(f"MQTT port must be an int, got {type(self.port).__name__}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"MQTT port must be in 1-65535, got {self.port}")
        if self.password is not None and self.username is None:
            raise ConfigError("an MQTT password needs a user name")
        if self.protocol not in MQTT_PROTOCOLS:
            raise ConfigError(f"MQTT protocol must be 5 or 3.1.1, got {self.protocol!r}")
        if self.ca_file is not None and not self.tls:
            raise ConfigError("a CA file is only used over TLS: the broker URL must be mqtts://")

    @classmethod
    def from_url(cls, url: str) -> MqttSettings:
        """Parse ``mqtt[s]://[user[:password]@]host[:port][?protocol=5|3.1.1]``.

        ``mqtts://`` is MQTT over TLS (`tls`), on port 8883 unless the URL
        names one; the CA file, if any, is not part of the URL (`ca_file`).
        The scheme is case-insensitive; surrounding whitespace is ignored.
        User name and password are percent-decoded (UTF-8), so ``p%40ss``
        means ``p@ss``; ``user:@host`` gives an empty password, ``user@host``
        none. An IPv6 host is written in brackets (``mqtt://[::1]:1883``) and
        stored without them. The port defaults to 1883, the protocol to MQTT 5;
        ``protocol`` is the one query parameter there is. Error reasons never
        quote the user name or password.

        Args:
            url: The broker URL, e.g. ``"mqtt://feed:secret@broker:1883"``.

        Returns:
            The settings.

        Raises:
            ConfigError: Another scheme (only ``mqtt://`` and ``mqtts://``), a
                missing or malformed host, a bad or out-of-range port, an empty
                user name, bad percent-encoding, a path or fragment, or a query
                other than ``?protocol=5`` or ``?protocol=3.1.1``.
        """
        scheme, sep, rest = url.strip().partition("://")
        if not sep:
            raise ConfigError(
                f"not an MQTT URL: {_redact_candidate(url)!r}; expected mqtt://host[:port]"
            )
        tls = scheme.lower() == "mqtts"
        if scheme.lower() != "mqtt" and not tls:
            raise ConfigError(
                f"unsupported URL scheme {scheme!r}: only mqtt:// and mqtts:// are supported"
            )
        authority, tail = _split_tail(rest)
        protocol = "5"
        if tail.startswith("?protocol="):
            protocol = tail.removeprefix("?protocol=")
            if protocol not in MQTT_PROTOCOLS:  # the value is not quoted: it may hold a secret
                raise ConfigError("an MQTT URL's ?protocol= must be 5 or 3.1.1")
        elif tail:
            raise ConfigError(_tail_reason(tail))
        userinfo, at, hostport = authority.rpartition("@")
        username, password = _parse_userinfo(userinfo) if at else (None, None)
        host, port = _parse_hostport(hostport, DEFAULT_MQTTS_PORT if tls else DEFAULT_MQTT_PORT)
        return cls(
            host=host,
            port=port,
            username=username,
            password=password,
            protocol=protocol,
            tls=tls,
        )

    @property
    def url(self) -> str:
        """This connection as a URL with the password shown as ``***``, for logs and status.

        ``from_url(s.url)`` gives back `s` except for the password and `ca_file`.
        """
        host = f"[{self.host.replace('%', '%25')}]" if ":" in self.host else self.host
        query = "" if self.protocol == "5" else f"?protocol={self.protocol}"
        scheme = "mqtts" if self.tls else "mqtt"
        if self.username is None:
            return f"{scheme}://{host}:{self.port}{query}"
        user = quote(self.username, safe="")
        secret = "" if self.password is None else ":***"
        return f"{scheme}://{user}{secret}@{host}:{self.port}{query}"

    def __repr__(self) -> str:
        secret = None if self.password is None else "***"
        return (
            f"MqttSettings(host={self.host!r}, port={self.port!r}, "
            f"username={self.username!r}, password={secret!r}, protocol={self.protocol!r}, "
            f"tls={self.tls!r}, ca_file={self.ca_file!r})"
        )


def _split_tail(rest: str) -> tuple[str, str]:
    """Split off what follows the authority: a path, query or fragment."""
    for index, char in enumerate(rest):
        if char in "/?#":
            return rest[:index], rest[index:]
    return rest, ""


def _tail_reason(tail: str) -> str:
    what = {"/": "a path", "?": "a query", "#": "a fragment"}[tail[0]]
    return (
        f"an MQTT URL takes no path, fragment or query but ?protocol=; this one has {what} "
        f"after the host (if that is part of a password, {_ENCODE_HINT})"
    )


def _parse_userinfo(userinfo: str) -> tuple[str, str | None]:
    raw_user, colon, raw_password = userinfo.partition(":")
    username = _percent_decode(raw_user, "user name")
    if not username:
        raise ConfigError("the user name before '@' in the MQTT URL is empty")
    password = _percent_decode(raw_password, "password") if colon else None
    return username, password


def _percent_decode(text: str, what: str) -> str:
    if _BAD_PERCENT.search(text):
        raise ConfigError(f"the {what} in the MQTT URL has a '%' not followed by two hex digits")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the {what} in the MQTT URL is not percent-encoded UTF-8") from exc


def _parse_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f"unclosed '[' in MQTT URL host {hostport!r}")
        host = _ipv6(hostport[1:end])
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise ConfigError(f"unexpected {after!r} after ']' in MQTT URL host")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_or_empty = hostport.partition(":")
        if ":" in port_text_or_empty:
            raise ConfigError(
                f"MQTT URL host {hostport!r} has several ':'; write an IPv6 address in brackets"
            )
        port_text = port_text_or_empty if colon else None
        if host and _REG_NAME.fullmatch(host) is None:
            raise ConfigError(f"invalid host {host!r} in MQTT URL")
    if not host:
        raise ConfigError("the MQTT URL has no host; expected mqtt://host[:port]")
    return host, default_port if port_text is None else _parse_port(port_text)


def _ipv6(text: str) -> str:
    address = unquote(text)  # a zone id is written "%25eth0" in URLs
    try:
        ipaddress.IPv6Address(address)
    except ValueError as exc:
        raise ConfigError(f"invalid IPv6 address [{text}] in MQTT URL: {exc}") from exc
    return address


def _parse_port(text: str) -> int:
    if not text:
        raise ConfigError("the MQTT URL has ':' but no port after it")
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"MQTT URL port {text!r} is not a number")
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        shown = text if len(text) <= 10 else f"{text[:10]}..."
        raise ConfigError(f"MQTT URL port {shown} is out of range 1-65535")
    return int(text)


def _redact_candidate(url: str) -> str:
    """Whatever `url` is, cut anything that might be a password (before '@')."""
    return url.rpartition("@")[2]
