"""`tickbus dashboard`: its state against what real components published, its actions and
who may take them, and the page itself in a real headless Chromium (Debian's, via Selenium)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from broker import BusClient, MqttSettings
from dashboard import BusState, Operator, create_app
from dashboard._app import PUSH_INTERVAL_S
from dashboard._state import FILTERS
from tests.support import (
    REPO_ROOT,
    Mosquitto,
    Processes,
    free_port,
    recorder,
    serve_algorithm,
    start_bridge,
    unique,
    wait_online,
    wait_until,
)

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
LOOPBACK, ELSEWHERE = ("127.0.0.1", 40001), ("10.20.30.40", 40002)


@dataclass
class Stack:
    """A feed, paper execution, an algorithm server and its bridge, on real processes."""

    url: str
    port: int
    feed: str
    execution: str
    bridge: str
    sid: str


def start_stack(procs: Processes, url: str, port: int, *, rate: int = 20) -> Stack:
    stack = Stack(url, port, unique("dfeed"), unique("dexec"), unique("dbr"), unique("D").upper())
    procs.tickbus("execution", "paper", "--mqtt", url, "--name", stack.execution, name="exec")
    addr = serve_algorithm(procs, "algos.examples:MovingAverageCross", "fast=2", "slow=4")
    with recorder(port, f"status/bridge/{stack.bridge}") as rec:
        start_bridge(procs, url, addr, stack.bridge, f'channels=["quotes/{stack.sid}"]')
        wait_online(rec, stack.bridge)
    procs.tickbus("feed", "synthetic", "--mqtt", url, "--symbols", stack.sid, "--rate", str(rate),
                  "--name", stack.feed, name="feed")  # fmt: skip
    return stack


@pytest.fixture
def stack(procs: Processes, mqtt_url: str, mosquitto_port: int) -> Stack:
    return start_stack(procs, mqtt_url, mosquitto_port)


@pytest.fixture
def served(stack: Stack, tmp_path: Path) -> Iterator[tuple[BusState, Operator]]:
    """The dashboard's state fed by a real subscription to the stack's broker."""
    state = BusState()
    settings = MqttSettings.from_url(stack.url)
    with BusClient(settings, component="dashboard", name=unique("dash"),
                   on_message=state.on_message, announce=False) as bus:  # fmt: skip
        bus.subscribe(list(FILTERS), qos=1)
        yield state, Operator(settings)


def bridge_of(client: TestClient, name: str) -> dict[str, Any] | None:
    bridge = client.get("/api/state").json()["bridges"].get(name)
    return bridge if bridge and bridge.get("equity") is not None and bridge["fills"] > 2 else None


def test_the_state_matches_what_the_components_published(
    stack: Stack, served: tuple[BusState, Operator], tmp_path: Path
) -> None:
    state, operator = served
    app = create_app(state, operator, token=None, reports=None)
    topics = (f"status/bridge/{stack.bridge}", f"orders/{stack.bridge}", f"fills/{stack.bridge}")
    with recorder(stack.port, *topics) as rec, TestClient(app, client=LOOPBACK) as client:
        wait_until(lambda: bridge_of(client, stack.bridge), timeout=30, what="fills on the page")
        snapshot = client.get("/api/state").json()
        published = rec.json_on(f"status/bridge/{stack.bridge}")
        orders, fills = rec.json_on(f"orders/{stack.bridge}"), rec.json_on(f"fills/{stack.bridge}")
    shown = snapshot["bridges"][stack.bridge]
    match = [s for s in published if s.get("fills") == shown["fills"]]
    assert match, "the page shows a status the bridge published"
    portfolio = match[-1]["algo"]["portfolio"]
    assert (shown["equity"], shown["cash"]) == (portfolio["equity"], portfolio["cash"])
    assert shown["positions"] == portfolio["positions"] and shown["health"] == "online"
    assert shown["equity_curve"] and shown["equity_curve"][-1][1] == shown["equity"]
    kinds = {(c["component"], c["name"]): c for c in snapshot["components"]}
    for key in (("feed", stack.feed), ("execution", stack.execution), ("bridge", stack.bridge)):
        assert kinds[key]["health"] == "online", key
    assert kinds[("feed", stack.feed)]["counters"]["published"] > 0
    shown_orders = {o["id"] for o in snapshot["orders"] if o["source"] == stack.bridge}
    shown_fills = {f["id"] for f in snapshot["fills"] if f["source"] == stack.bridge}
    assert shown_orders and shown_orders <= {o["id"] for o in orders}
    assert shown_fills and shown_fills <= {f["id"] for f in fills}
    assert snapshot["quotes_per_s"] > 0


def test_actions_need_the_token_beyond_the_loopback(
    stack: Stack, served: tuple[BusState, Operator]
) -> None:
    state, operator = served
    act = {"X-Tickbus-Action": "1"}
    kill = f"/api/bridges/{stack.bridge}/kill"
    with_token = create_app(state, operator, token="s3cret", reports=None)
    with TestClient(with_token, client=ELSEWHERE) as remote:
        refused = remote.post(kill, json={"reason": "no token"}, headers=act)
        assert refused.status_code == 403 and "read-only" in refused.json()["outcome"]
        wrong = remote.post(kill, json={"reason": "x"}, headers={**act, "X-Tickbus-Token": "no"})
        assert wrong.status_code == 403
        assert remote.get("/api/access").json() == {"can_act": False, "token_needed": True}
        no_header = remote.post(kill, json={}, headers={"X-Tickbus-Token": "s3cret"})
        assert no_header.status_code == 403, "an action without its header is refused"
        killed = remote.post(kill, json={"reason": "by token"},
                             headers={**act, "X-Tickbus-Token": "s3cret"})  # fmt: skip
        assert killed.status_code == 200 and killed.json()["ok"], killed.json()
        wait_until(  # the page learns it from the bridge's next status, not from the reply
            lambda: state.snapshot()["bridges"][stack.bridge]["killed"] == "by token",
            timeout=10,
            what="the kill on the page",
        )
        lifted = remote.post(f"/api/bridges/{stack.bridge}/lift", json={},
                             headers={**act, "X-Tickbus-Token": "s3cret"})  # fmt: skip
        assert lifted.json()["ok"]
        log = remote.get("/api/state").json()["actions"]
    assert [(a["action"], a["who"]) for a in log] == [
        ("lift", "token holder at 10.20.30.40"), ("kill", "token holder at 10.20.30.40"),
    ]  # fmt: skip
    loopback_only = create_app(state, operator, token=None, reports=None)
    with TestClient(loopback_only, client=ELSEWHERE) as remote:
        assert remote.post(kill, json={}, headers=act).status_code == 403
    with TestClient(loopback_only, client=LOOPBACK) as local:
        unknown = local.post("/api/bridges/no-such-bridge/kill", json={}, headers=act)
        assert unknown.status_code == 409 and "no-such-bridge" in unknown.json()["outcome"]
        no_action = local.post(f"/api/bridges/{stack.bridge}/explode", json={}, headers=act)
        assert no_action.status_code == 404 and "no action 'explode'" in no_action.json()["outcome"]


def test_a_swap_from_the_dashboard_points_the_bridge_at_another_server(
    stack: Stack, served: tuple[BusState, Operator], procs: Processes
) -> None:
    state, operator = served
    other = serve_algorithm(procs, "algos.examples:RandomAlgo", "threshold=0.9")
    app = create_app(state, operator, token=None, reports=None)
    act = {"X-Tickbus-Action": "1"}
    with TestClient(app, client=LOOPBACK) as client:
        bad = client.post(f"/api/bridges/{stack.bridge}/swap", json={"rpc": "localhost:1"},
                          headers=act)  # fmt: skip
        assert bad.status_code == 409 and "tcp://HOST:PORT" in bad.json()["outcome"]
        carry = {"rpc": other, "carry_portfolio": True}
        swapped = client.post(f"/api/bridges/{stack.bridge}/swap", json=carry, headers=act)
        assert swapped.status_code == 200 and swapped.json()["outcome"] == "swapped"
        wait_until(
            lambda: (client.get("/api/state").json()["bridges"][stack.bridge]["rpc"] == other),
            timeout=15, what="the bridge reporting its new server",
        )  # fmt: skip
        log = client.get("/api/state").json()["actions"]
    assert log[0]["detail"] == f"{other} carrying the portfolio" and log[0]["ok"]
    assert not log[1]["ok"], "the refused swap is logged too"


def test_pushes_stay_a_few_a_second_however_fast_the_bus_runs(
    procs: Processes, mqtt_url: str
) -> None:
    import urllib.request

    feed = unique("fast")
    procs.tickbus("feed", "synthetic", "--mqtt", mqtt_url, "--symbols", unique("F").upper(),
                  "--rate", "2000", "--name", feed, name="feed")  # fmt: skip
    page = serve_dashboard(procs, mqtt_url)
    pushed: list[dict[str, Any]] = []
    began = time.monotonic()
    with urllib.request.urlopen(f"{page}api/events", timeout=10) as stream:
        while time.monotonic() - began < 4:
            line = stream.readline()
            if line.startswith(b"data: "):
                pushed.append(json.loads(line[len(b"data: ") :]))
    assert 2 <= len(pushed) <= 4 / PUSH_INTERVAL_S + 1, len(pushed)
    feeds = [c for c in pushed[-1]["components"] if c["name"] == feed]
    assert feeds and feeds[0]["health"] == "online" and feeds[0]["counters"]["published"] > 0


def test_beyond_the_loopback_the_dashboard_makes_a_token_and_asks_for_it(
    procs: Processes, mqtt_url: str
) -> None:
    import urllib.error
    import urllib.request

    port = free_port()
    proc = procs.tickbus("dashboard", "--mqtt", mqtt_url, "--bind", "0.0.0.0", "--port",
                         str(port), name="dashboard")  # fmt: skip
    printed = wait_until(lambda: re.search(r"\?token=(\S+)", proc.log()), timeout=30,
                         what="the link with its token")  # fmt: skip
    token, page = printed.group(1), f"http://127.0.0.1:{port}/"
    wait_until(lambda: _answers(page), timeout=30, what="the dashboard")

    def kill(headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"{page}api/bridges/nobody/kill", data=b"{}",
                                         method="POST", headers=headers)  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return refused.code

    assert kill({"X-Tickbus-Action": "1"}) == 403, "even from this machine, without the token"
    assert kill({"X-Tickbus-Action": "1", "X-Tickbus-Token": token}) == 409, "no such bridge"


# --- the page, in a real browser -------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed: .ci/run installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,2000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def serve_dashboard(procs: Processes, url: str, *args: str) -> str:
    port = free_port()
    procs.tickbus("dashboard", "--mqtt", url, "--port", str(port), *args, name="dashboard")
    page = f"http://127.0.0.1:{port}/"
    wait_until(lambda: _answers(page), timeout=30, what="the dashboard")
    return page


def _answers(page: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(page, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def text(driver: Any, selector: str) -> str:
    """The text of the first element `selector` finds, "" when none (read in one step:
    the page rebuilds its tables on every update)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector
    )
    return str(found)


def test_the_page_shows_the_stack_and_its_kill_switch_works(
    stack: Stack, procs: Processes, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    reports = tmp_path / "reports"
    made = subprocess.run(
        [sys.executable, "-m", "tickbus", "data", "sample", "--out", str(tmp_path / "data"),
         "--days", "1", "--rate", "0.05"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    ran = subprocess.run(
        [sys.executable, "-m", "tickbus", "backtest", "algos.examples:RandomAlgo", "--data",
         str(tmp_path / "data"), "--out", str(reports / "backtests" / "first")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    page = serve_dashboard(procs, stack.url, "--reports", str(reports))
    browser.get(page)
    card = f'.bridge[data-name="{stack.bridge}"]'
    for component, name in (("feed", stack.feed), ("execution", stack.execution),
                            ("bridge", stack.bridge)):  # fmt: skip
        row = f'#components tr[data-component="{component}"][data-name="{name}"]'
        wait_until(lambda row=row: "online" in text(browser, row), timeout=30, what=row)
    assert text(browser, "#access") == "operator"
    seen: set[str] = set()

    def equity_moved() -> bool:
        seen.add(text(browser, f"{card} .equity"))
        return len(seen - {"", "-"}) >= 3

    wait_until(equity_moved, timeout=60, what="the equity changing on screen")
    with recorder(stack.port, f"orders/{stack.bridge}/rejected", f"orders/{stack.bridge}") as rec:
        browser.find_element(By.CSS_SELECTOR, f"{card} button.kill").click()
        wait_until(lambda: "kill switch on" in text(browser, f"{card} .killed"), timeout=20,
                   what="the kill switch on the page")  # fmt: skip
        refused = wait_until(lambda: rec.json_on(f"orders/{stack.bridge}/rejected"), timeout=30,
                             what="the next order refused")  # fmt: skip
        assert "killed from the dashboard" in refused[0]["reason"]
        browser.save_screenshot(str(tmp_path / "dashboard-killed.png"))
        browser.find_element(By.CSS_SELECTOR, f"{card} button.lift").click()
        wait_until(lambda: not text(browser, f"{card} .killed"), timeout=20, what="the lift")
        before = len(rec.on(f"orders/{stack.bridge}"))
        wait_until(lambda: len(rec.on(f"orders/{stack.bridge}")) > before, timeout=30,
                   what="orders flowing again")  # fmt: skip
    wait_until(lambda: "kill" in text(browser, "#actions"), timeout=10, what="the action log")
    assert "local user at 127.0.0.1" in text(browser, "#actions")
    link = browser.find_element(By.CSS_SELECTOR, "#reports a")
    assert link.text == "backtests/first" and link.get_attribute("href").endswith(
        "/reports/backtests/first/report.html"
    )
    screenshot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    link.click()  # the report opens in the page, below the list
    browser.switch_to.frame(browser.find_element(By.ID, "report-view"))
    wait_until(lambda: "Metrics" in text(browser, "body"), timeout=15, what="the report")
    assert "algos.examples:RandomAlgo" in text(browser, "h1")
    browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "dashboard-report.png"))


def test_a_page_left_open_across_a_broker_restart_shows_current_state(
    own_broker: Mosquitto, procs: Processes, browser: Any
) -> None:
    feed = unique("rfeed")
    procs.tickbus("feed", "synthetic", "--mqtt", own_broker.url, "--symbols", unique("R").upper(),
                  "--rate", "20", "--name", feed, name="feed")  # fmt: skip
    page = serve_dashboard(procs, own_broker.url)
    browser.get(page)
    row = f'#components tr[data-component="feed"][data-name="{feed}"]'
    wait_until(lambda: "online" in text(browser, row), timeout=30, what="the feed on the page")
    own_broker.stop()
    wait_until(lambda: "online" not in text(browser, row), timeout=30,
               what="the page marking the feed stale while the broker is down")  # fmt: skip
    own_broker.start()
    wait_until(lambda: "online" in text(browser, row), timeout=60,
               what="the page showing the feed online again")  # fmt: skip

    def published() -> int:
        counters = text(browser, f"{row} td:last-child")
        return int(counters.split("published=")[1].split()[0]) if "published=" in counters else 0

    first = published()
    wait_until(lambda: published() > first, timeout=30, what="the counters moving again")


def test_the_dashboard_help_explains_the_token_and_the_roles() -> None:
    run = subprocess.run([sys.executable, "-m", "tickbus", "dashboard", "--help"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    text_ = " ".join(run.stdout.split())
    for phrase in ("--token-file", "--operator-password-file", "read-only", "--reports"):
        assert phrase in text_, phrase
