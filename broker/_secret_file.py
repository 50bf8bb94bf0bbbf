"""Files that hold one secret, an MQTT password: written private (0600), read without echoing it."""

from __future__ import annotations

import os
from pathlib import Path

from tickbus.errors import ConfigError

MAX_PASSWORD_BYTES = 65535
"""The longest password MQTT can carry (a two-byte length prefix)."""


def read_password_file(path: Path) -> str:
    """The password held in `path`: the file's text without one trailing line break.

    A file written with ``echo``, by `write_secret_file`, or by Docker or
    Kubernetes as a secret all work. Every reason for refusing the file names
    the file and never quotes its content.

    Args:
        path: The password file.

    Returns:
        The password, not empty.

    Raises:
        ConfigError: The file cannot be read, is not UTF-8, is empty, holds
            more than one line, or holds more than `MAX_PASSWORD_BYTES`.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PASSWORD_BYTES + 3)  # room for a line break, and one byte over
    except OSError as exc:
        raise ConfigError(f"cannot read the MQTT password file {path}: {exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"the MQTT password file {path} is not UTF-8 text") from None
    password = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not password:
        raise ConfigError(f"the MQTT password file {path} is empty")
    if "\n" in password or "\r" in password:
        raise ConfigError(
            f"the MQTT password file {path} holds more than one line; "
            "it must hold the password alone"
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ConfigError(
            f"the MQTT password file {path} holds more than {MAX_PASSWORD_BYTES} bytes, "
            "more than MQTT can carry; is it the right file?"
        )
    return password


def write_secret_file(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only (mode 0600).

    An existing file is replaced, and made 0600 before the new text goes in;
    a symbolic link at `path` is refused rather than followed.

    Raises:
        ConfigError: The file cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(fd, 0o600)  # O_CREAT's mode applies to new files only
            file.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
