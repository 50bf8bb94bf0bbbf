"""The README's promises, kept true: its two commands, its example algorithm, its CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT, Processes, free_port, recorder, unique, wait_until

README = (REPO_ROOT / "README.md").read_text()


def code_blocks() -> list[str]:
    return re.findall(r"```\w*\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_exactly_two_commands_that_exist_in_the_makefile() -> None:
    first = code_blocks()[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make up", "make test"]
    assert README.index(first) < 40, "the two commands come first"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^up:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_command_the_readme_names_has_help() -> None:
    named = set(re.findall(r"`tickbus ([a-z]+(?: [a-z]+)?)`", README))
    assert {"broker", "bridge", "swap", "up", "view", "algo serve", "feed csv"} <= named
    for command in sorted(named):
        result = subprocess.run(
            [sys.executable, "-m", "tickbus", *command.split(), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO_ROOT,
        )
        assert result.returncode == 0, (command, result.stderr)


def test_the_readme_algorithm_serves_trades_and_swaps(
    procs: Processes, mqtt_url: str, mosquitto_port: int, tmp_path: Path
) -> None:
    source = next(block for block in code_blocks() if block.startswith("# my_algos.py"))
    (tmp_path / "my_algos.py").write_text(source)
    name, sid = unique("dip"), unique("D").upper()
    addr, new_addr = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    server = procs.tickbus(
        "algo",
        "serve",
        "my_algos:BuyTheDip",
        "--addr",
        addr,
        "--app-dir",
        str(tmp_path),
        "--param",
        "starting_cash=50000",
        name="dip",
    )
    sma = procs.tickbus(
        "algo", "serve", "algos.examples:MovingAverageCross", "--addr", new_addr, name="sma"
    )
    wait_until(
        lambda: "serving" in server.log() and "serving" in sma.log(),
        timeout=15,
        what="both servers",
    )
    with recorder(mosquitto_port, f"orders/{name}", f"status/bridge/{name}") as rec:
        procs.tickbus(
            "bridge",
            "--mqtt",
            mqtt_url,
            "--rpc",
            addr,
            "--name",
            name,
            "--param",
            f'channels=["quotes/{sid}"]',
            name="bridge",
        )
        wait_until(
            lambda: any(s.get("channels") for s in rec.json_on(f"status/bridge/{name}")),
            timeout=20,
            what="bridge online",
        )
        for price in ("100", "98"):
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-p",
                    str(mosquitto_port),
                    "-t",
                    f"quotes/{sid}",
                    "-m",
                    f'{{"{sid.lower()}": {price}}}',
                ],
                check=True,
                timeout=10,
            )
        orders = wait_until(lambda: rec.json_on(f"orders/{name}"), timeout=10, what="a dip buy")
        swap = subprocess.run(
            [
                sys.executable,
                "-m",
                "tickbus",
                "swap",
                "--mqtt",
                mqtt_url,
                "--bridge",
                name,
                "--rpc",
                new_addr,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert [(o["sid"], o["side"], o["price"]) for o in orders] == [(sid, "buy", 98.0)]
    assert orders[0]["qty"] == int(50_000 * 0.1 / 98)
    assert swap.returncode == 0, swap.stderr
    assert f"now forwards to {new_addr}" in swap.stdout
