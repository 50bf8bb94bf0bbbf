"""The README's promises, kept true: its two commands, its example algorithm, its CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import (
    REPO_ROOT,
    Processes,
    recorder,
    serve_algorithm,
    start_bridge,
    swap,
    unique,
    wait_online,
    wait_until,
)

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


def test_the_readme_says_where_tickbus_is_right_after_the_two_commands() -> None:
    first = code_blocks()[0]
    after = README[README.index(first) + len(first) :]
    next_paragraph = after.split("\n\n")[1]
    assert ". .venv/bin/activate" in next_paragraph
    assert ".venv/bin/tickbus" in next_paragraph
    assert "make up ARGS=" in next_paragraph


def make_dry_run(target: str, venv: Path, *args: str) -> str:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={venv}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        check=True,
    )
    return result.stdout


def test_make_up_passes_args_and_installs_no_dev_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    up = make_dry_run("up", venv, "ARGS=--port 18830 --rate 5")
    assert f"{venv}/bin/tickbus up --port 18830 --rate 5" in up
    assert "pip install" in up and "[dev]" not in up
    assert "-e '.[dev]'" in make_dry_run("test", venv)
    assert "-e '.[dev]'" in make_dry_run("lint", venv)


def test_the_docs_say_docker_compose_and_npx_yes() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    commands = "\n".join(code_blocks())
    assert "docker compose up" in commands and "docker compose up" in compose
    assert "docker-compose " not in commands + compose
    assert README.count("docker-compose ") == 1, "the older binary is mentioned once"
    npx = re.findall(r"npx [^\n]*", README)
    assert npx and all(line.startswith("npx --yes ") for line in npx)


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
    addr = serve_algorithm(
        procs, "my_algos:BuyTheDip", "starting_cash=50000", app_dir=str(tmp_path)
    )
    new_addr = serve_algorithm(procs, "algos.examples:MovingAverageCross")
    with recorder(mosquitto_port, f"orders/{name}", f"status/bridge/{name}") as rec:
        start_bridge(procs, mqtt_url, addr, name, f'channels=["quotes/{sid}"]')
        wait_online(rec, name)
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
        swapped = swap(mqtt_url, name, new_addr)
    assert [(o["sid"], o["side"], o["type"]) for o in orders] == [(sid, "buy", "market")]
    assert orders[0]["qty"] == int(50_000 * 0.1 / 98)
    assert swapped.returncode == 0, swapped.stderr
    assert f"now forwards to {new_addr}" in swapped.stdout


def test_the_readme_tape_example_runs_on_the_sample(tmp_path: Path) -> None:
    example = next(block for block in code_blocks() if "tape.read_quotes(" in block)
    sample = subprocess.run(
        [sys.executable, "-m", "tickbus", "data", "sample", "--out", "data/sample"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert sample.returncode == 0, sample.stderr
    ran = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    promised = re.search(r"print\(next\(quotes\)\)  # (\{.*), \.\.\.\}", example)
    assert promised is not None
    assert ran.stdout.startswith(promised.group(1)), (ran.stdout, promised.group(1))


def run_block(verb: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the README's block of ``tickbus data sample`` then ``tickbus VERB``, as written.

    Returns:
        The last command's run.
    """
    block = next(block for block in code_blocks() if f"tickbus {verb} " in block)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert [c.split()[:2] for c in commands] == [["tickbus", "data"], ["tickbus", verb]]
    for command in commands:
        ran = subprocess.run(
            [sys.executable, "-m", *command.split()],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )
        assert ran.returncode == 0, (command, ran.stderr)
    return ran


def test_the_readme_first_backtest_runs_as_written(tmp_path: Path) -> None:
    ran = run_block("backtest", tmp_path)
    results = tmp_path / "backtests" / "first"
    for name in ("orders.parquet", "fills.parquet", "equity.parquet", "summary.json"):
        assert (results / name).is_file(), name
    assert (results / "report.html").is_file() and (results / "equity.png").is_file()
    assert "Sharpe" in ran.stdout or "sharpe" in ran.stdout


def test_the_readme_first_sweep_runs_as_written(tmp_path: Path) -> None:
    ran = run_block("sweep", tmp_path)
    results = tmp_path / "sweeps" / "first"
    assert "12 jobs (4 param sets x 3 symbol groups)" in ran.stderr
    assert ran.stdout.startswith("job ") and "sharpe" in ran.stdout.splitlines()[0]
    for name in ("results.parquet", "results.csv", "heatmap.png", "report.html"):
        assert (results / name).is_file(), name
    assert len(list((results / "jobs").glob("*/report.html"))) == 12
