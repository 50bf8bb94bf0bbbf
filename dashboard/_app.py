"""The dashboard's web app (Starlette): the page, its data as JSON and server-sent events, actions.

Routes:

* ``GET /``: the page (plain HTML and JavaScript from ``static/``, uPlot vendored);
* ``GET /api/state``: a snapshot (`BusState.snapshot`) with the action log;
* ``GET /api/events``: server-sent events, one snapshot per event, at most
  one every `PUSH_INTERVAL_S` however fast the bus runs, and one at least
  every `KEEPALIVE_S` (so a page notices a dead server);
* ``GET /api/access``: whether this client may act (``can_act``);
* ``POST /api/bridges/{name}/kill|lift|swap``: the operator's actions
  (`Operator`); JSON bodies ``{"reason"}``, ``{}``, ``{"rpc", "carry_portfolio"}``;
* ``GET /api/reports`` and ``/reports/...``: the backtest and sweep
  directories under ``--reports``, and their files.

Who may act: with no token (the server binds loopback), a client on the
loopback; with a token, a request carrying it in ``X-Tickbus-Token``, from
anywhere. Every action must also carry ``X-Tickbus-Action: 1``, a header a
page of another site cannot send here, so a web page cannot act through the
operator's browser.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard._actions import Operator
from dashboard._state import BusState

STATIC = Path(__file__).parent / "static"
PUSH_INTERVAL_S = 0.5
KEEPALIVE_S = 5.0
TOKEN_HEADER = "x-tickbus-token"
ACTION_HEADER = "x-tickbus-action"
MAX_REASON = 200
ACTIONS = ("kill", "lift", "swap")


def create_app(
    state: BusState, operator: Operator, *, token: str | None, reports: Path | None
) -> Starlette:
    """The app over `state`, acting through `operator` (see the module docstring).

    Args:
        state: What the bus said.
        operator: Sends the actions.
        token: The actions' token; None lets loopback clients act without one.
        reports: The directory of backtest and sweep results, or None.
    """

    def current() -> dict[str, Any]:
        return {**state.snapshot(), "actions": operator.history()}

    async def page(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def snapshot(_request: Request) -> Response:
        return JSONResponse(current())

    async def access(request: Request) -> Response:
        return JSONResponse({"can_act": _may_act(request, token), "token_needed": bool(token)})

    async def events(request: Request) -> Response:
        return StreamingResponse(_stream(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    async def _stream(request: Request) -> AsyncIterator[str]:
        sent, quiet = -1, 0.0
        while not await request.is_disconnected():
            if state.version != sent or quiet >= KEEPALIVE_S:
                sent, quiet = state.version, 0.0
                yield f"data: {json.dumps(current(), default=str)}\n\n"
            await asyncio.sleep(PUSH_INTERVAL_S)
            quiet += PUSH_INTERVAL_S

    async def act(request: Request) -> Response:
        if request.headers.get(ACTION_HEADER) != "1" or not _may_act(request, token):
            why = "this page is read-only: actions need the dashboard's token" if token else (
                "actions are taken only from this machine (the loopback)"
            )  # fmt: skip
            return JSONResponse({"ok": False, "outcome": why}, status_code=403)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"ok": False, "outcome": f"no action {action!r}"}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        who = _who(request, token)
        if action == "kill":
            reason = str(body.get("reason") or "killed from the dashboard")[:MAX_REASON]
            entry = await run_in_threadpool(operator.kill, name, reason, who=who)
        elif action == "lift":
            entry = await run_in_threadpool(operator.lift, name, who=who)
        else:
            rpc, carry = str(body.get("rpc") or ""), bool(body.get("carry_portfolio"))
            entry = await run_in_threadpool(operator.swap, name, rpc, carry=carry, who=who)
        return JSONResponse(entry, status_code=200 if entry["ok"] else 409)

    async def report_list(_request: Request) -> Response:
        return JSONResponse({"reports": [] if reports is None else list_reports(reports)})

    routes = [
        Route("/", page),
        Route("/api/state", snapshot),
        Route("/api/access", access),
        Route("/api/events", events),
        Route("/api/reports", report_list),
        Route("/api/bridges/{name}/{action:str}", act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if reports is not None:
        reports.mkdir(parents=True, exist_ok=True)
        routes.append(Mount("/reports", StaticFiles(directory=reports, html=True)))
    return Starlette(routes=routes)


def list_reports(root: Path) -> list[dict[str, Any]]:
    """Every directory under `root` (two levels deep) holding a ``report.html``, newest first.

    Each: ``path`` (relative to `root`), ``kind`` (``sweep`` when it holds a
    ``results.parquet``, else ``backtest``) and ``modified`` (epoch seconds).
    """
    found = []
    for report in [*root.glob("*/report.html"), *root.glob("*/*/report.html")]:
        folder = report.parent
        if "jobs" in folder.relative_to(root).parts:
            continue  # a sweep's own jobs: its report links them
        found.append({
            "path": folder.relative_to(root).as_posix(),
            "kind": "sweep" if (folder / "results.parquet").exists() else "backtest",
            "modified": report.stat().st_mtime,
        })  # fmt: skip
    return sorted(found, key=lambda r: -float(r["modified"]))


def _may_act(request: Request, token: str | None) -> bool:
    if token is not None:
        given = request.headers.get(TOKEN_HEADER, "")
        return hmac.compare_digest(given.encode(), token.encode())
    return _loopback(request)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _who(request: Request, token: str | None) -> str:
    host = request.client.host if request.client is not None else "?"
    return f"{'token holder' if token else 'local user'} at {host}"
