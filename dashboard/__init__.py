"""dashboard: a live web page of a running stack, and the operator's actions from it.

A Starlette app served by uvicorn (`tickbus dashboard`): it subscribes to
the bus, keeps a bounded picture of it (`BusState`), pushes it to every open
page as server-sent events, and sends a bridge's kill, lift and swap with
the operator's login (`Operator`). The page is plain HTML and JavaScript
under ``static/`` with uPlot vendored: no build step, no CDN.

Public API: `BusState`, `Operator`, `create_app`, `dashboard_command`.
"""

from dashboard._actions import Operator
from dashboard._app import create_app
from dashboard._cli import dashboard_command
from dashboard._state import BusState

__all__ = ["BusState", "Operator", "create_app", "dashboard_command"]
