"""Credentials for a broker that requires a login: one MQTT user per role, and the ACL for each.

The roles, their rights and the reasons are in the shipped ACL file
(`ACL_FILE`, ``broker/acl``); this module makes the users' passwords.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker._secret_file import write_secret_file
from tickbus.errors import ConfigError

ROLES: tuple[str, ...] = (
    "feed",
    "bridge",
    "execution",
    "relay",
    "recorder",
    "operator",
    "viewer",
)
"""The MQTT user names: each is a role, whose rights `ACL_FILE` lists under ``user <role>``."""

ACL_FILE = Path(__file__).with_name("acl")
"""The mosquitto ACL that confines every role to its topics."""

PASSWORD_FILE_SUFFIX = ".password"

_MOSQUITTO_PASSWD_FALLBACKS = (
    "/usr/bin/mosquitto_passwd",
    "/usr/local/bin/mosquitto_passwd",
    "/opt/homebrew/bin/mosquitto_passwd",
)


@dataclass(frozen=True, kw_only=True)
class BrokerAuth:
    """What mosquitto needs to require a login.

    Attributes:
        password_file: mosquitto's password file, hashed.
        acl_file: The ACL that confines each user (`ACL_FILE`).
    """

    password_file: Path
    acl_file: Path


def role_password_file(directory: Path, role: str) -> Path:
    """Where `create_credentials` puts the password of `role`: ``DIR/<role>.password``."""
    return directory / f"{role}{PASSWORD_FILE_SUFFIX}"


def create_credentials(directory: Path, *, broker_dir: Path) -> BrokerAuth:
    """Give every role in `ROLES` a fresh random password.

    The plain passwords go to ``DIR/<role>.password`` (`role_password_file`),
    one per file, mode 0600, for the components' ``--mqtt-password-file``;
    `directory` is made (mode 0700) if missing, and older password files in it
    are replaced. mosquitto's hashed password file goes to `broker_dir`, which
    should be private to this process: the passwords are written there in the
    clear first, then hashed in place with ``mosquitto_passwd -U``, so that no
    password is ever on a command line.

    Args:
        directory: Where the components read their credentials from.
        broker_dir: A private directory for mosquitto's password file.

    Returns:
        The password file and the ACL, for `mosquitto_config`.

    Raises:
        ConfigError: `ACL_FILE` or mosquitto_passwd is missing, mosquitto_passwd
            fails, or a file cannot be written.
    """
    if not ACL_FILE.is_file():
        raise ConfigError(f"the ACL file {ACL_FILE} is missing from this installation of tickbus")
    passwords = {role: secrets.token_urlsafe(24) for role in ROLES}  # 192 random bits each
    password_file = broker_dir / "passwords"
    write_secret_file(password_file, "".join(f"{r}:{p}\n" for r, p in passwords.items()))
    _hash_in_place(password_file)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the credentials directory {directory}: {exc}") from exc
    for role, password in passwords.items():
        write_secret_file(role_password_file(directory, role), f"{password}\n")
    return BrokerAuth(password_file=password_file, acl_file=ACL_FILE)


def find_mosquitto_passwd() -> str | None:
    """The mosquitto_passwd executable (it comes with mosquitto), or None."""
    found = shutil.which("mosquitto_passwd")
    if found is not None:
        return found
    return next((p for p in _MOSQUITTO_PASSWD_FALLBACKS if os.access(p, os.X_OK)), None)


def _hash_in_place(password_file: Path) -> None:
    binary = find_mosquitto_passwd()
    if binary is None:
        raise ConfigError(
            "mosquitto_passwd is not installed (not on PATH nor in "
            f"{', '.join(_MOSQUITTO_PASSWD_FALLBACKS)}); it comes with mosquitto"
        )
    result = subprocess.run(
        [binary, "-U", str(password_file)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ConfigError(f"mosquitto_passwd could not hash {password_file}: {output}")
