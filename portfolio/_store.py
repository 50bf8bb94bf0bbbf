"""A portfolio snapshot kept in a file that survives a crash: written atomically, read at start."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tickbus.errors import ConfigError

SNAPSHOT_FILE = "portfolio.json"
"""The file name in a state directory."""


class SnapshotFile:
    """One snapshot file, ``DIR/portfolio.json``.

    `save` writes a temporary file in the same directory, flushes it to disk,
    and renames it over the old one, then flushes the directory: after a
    crash, even a ``kill -9`` or a power cut, the file holds either the old
    snapshot or the new one, never a mix.

    Args:
        directory: The state directory; created when missing.

    Raises:
        ConfigError: The directory cannot be created.
    """

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory {directory}: {exc}") from exc
        self.path = directory / SNAPSHOT_FILE

    def load(self) -> dict[str, Any] | None:
        """The saved snapshot, or None when nothing was saved yet.

        Raises:
            ConfigError: The file exists but cannot be read or is not a JSON
                object; it is left as it is, for a person to look at.
        """
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from exc
        try:
            snapshot = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{self.path} is not JSON: {exc}") from exc
        if not isinstance(snapshot, dict):
            raise ConfigError(f"{self.path} does not hold a portfolio snapshot")
        return snapshot

    def save(self, snapshot: dict[str, Any]) -> None:
        """Replace the saved snapshot with `snapshot`, atomically and durably."""
        payload = json.dumps(snapshot, allow_nan=False, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".portfolio-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
