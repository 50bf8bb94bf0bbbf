"""A person's way in, with MQTT.js: `mqtt pub -t quotes -m '{"goog": 3.45}'` makes an order.

The real `mqtt` npm package, pinned, installed once into a cache directory
outside the repository and reused by later runs; the session's real mosquitto,
a real algorithm server and a real bridge. Both ways people run it are tested:
``npx --yes mqtt pub ...`` (the README's) and ``node_modules/.bin/mqtt pub ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from broker import decode_order
from tests.support import (
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)

MQTTJS_VERSION = "5.16.0"
"""The `mqtt` npm package the tests install: the current 5.x when it was pinned."""

QUOTE = '{"goog": 3.45}'


def mqttjs_cache() -> Path:
    """Where the pinned MQTT.js lives between runs (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tickbus-tests" / f"mqttjs-{MQTTJS_VERSION}"


def installed_version(directory: Path) -> str | None:
    """The version of the `mqtt` package installed under `directory`, if any."""
    manifest = directory / "node_modules" / "mqtt" / "package.json"
    if not (manifest.is_file() and (directory / "node_modules" / ".bin" / "mqtt").exists()):
        return None
    return str(json.loads(manifest.read_text())["version"])


def install_mqttjs(target: Path) -> None:
    """Install the pinned `mqtt` into `target`, whole or not at all.

    npm installs into a fresh sibling directory that is then renamed to
    `target`, so an interrupted install never leaves a half-filled cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        npm = ["npm", "install", "--no-audit", "--no-fund", "--save-exact"]
        result = subprocess.run(
            [*npm, "--prefix", str(staging), f"mqtt@{MQTTJS_VERSION}"],
            capture_output=True,
            text=True,
            timeout=100,
        )
        if result.returncode != 0:
            pytest.fail(f"npm install mqtt@{MQTTJS_VERSION} failed:\n{result.stderr}")
        try:
            staging.rename(target)
        except OSError:  # another run installed it meanwhile: keep theirs
            if installed_version(target) != MQTTJS_VERSION:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="session")
def mqttjs() -> Path:
    """The directory holding the pinned MQTT.js (``node_modules/.bin/mqtt``), installed once."""
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"not installed: {', '.join(missing)}; .ci/run installs node and npm "
            "(scripts/ensure-node.sh, Debian's nodejs and npm with apt-get)"
        )
    directory = mqttjs_cache()
    if installed_version(directory) != MQTTJS_VERSION:
        shutil.rmtree(directory, ignore_errors=True)
        install_mqttjs(directory)
    assert installed_version(directory) == MQTTJS_VERSION
    return directory


def pub(port: int) -> list[str]:
    """``pub -t quotes -h localhost -p PORT -m '{"goog": 3.45}'``, as split by a shell."""
    return ["pub", "-t", "quotes", "-h", "localhost", "-p", str(port), "-m", QUOTE]


def npx_form(mqttjs: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The README's ``npx --yes mqtt pub ...``, run from the cache directory.

    Run there, npx takes the installed package; offline, it could not fetch
    another one, so the test knows which MQTT.js it ran.
    """
    return ["npx", "--yes", "mqtt", *pub(port)], {"npm_config_offline": "true"}


def bin_form(mqttjs: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The classic ``node_modules/.bin/mqtt pub ...``."""
    return [str(mqttjs / "node_modules" / ".bin" / "mqtt"), *pub(port)], {}


Form = Callable[[Path, int], tuple[list[str], dict[str, str]]]


@pytest.mark.parametrize("form", [npx_form, bin_form], ids=["npx", "node_modules-bin"])
def test_mqtt_pub_of_a_short_quote_makes_an_order_for_goog(
    form: Form, mqttjs: Path, procs: Processes, mqtt_url: str, mosquitto_port: int
) -> None:
    name = unique("mqttjs")
    rpc = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0")
    with recorder(mosquitto_port, f"status/bridge/{name}", f"orders/{name}") as rec:
        start_bridge(procs, mqtt_url, rpc, name)
        status = wait_online(rec, name)
        assert "quotes" in status["channels"], "the bare quotes channel, where mqtt pub sends"
        args, env = form(mqttjs, mosquitto_port)
        published = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=mqttjs,
            env={**os.environ, **env},
        )
        assert published.returncode == 0, published.stdout + published.stderr
        [order] = wait_until(
            lambda: rec.on(f"orders/{name}"), timeout=15, what="an order for GOOG from mqtt pub"
        )
    decoded = decode_order(order)
    assert (decoded["algo"], decoded["sid"], decoded["side"]) == (name, "GOOG", "buy")
    assert decoded["qty"] > 0
