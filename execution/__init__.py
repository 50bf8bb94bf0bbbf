"""execution: fills the orders algorithms publish, on paper for now.

Public API: `PaperBook` (the matching rules as plain Python, no broker),
`Fill` and `Rejection` (what it produces), `PaperConfig` and `run_paper` (the
MQTT service: ``orders/<algo>`` in, ``fills/<algo>`` and
``orders/<algo>/rejected`` out), and the click group `execution_group`
(`tickbus execution paper`), with `pricing_options`, the flags of matching's
rules that ``tickbus backtest`` shares.
"""

from execution._book import MAX_SEEN_ORDERS, MAX_WAITING_ORDERS, Fill, PaperBook, Rejection
from execution._cli import execution_group
from execution._config import PaperConfig
from execution._options import pricing_options
from execution._service import run_paper

__all__ = [
    "MAX_SEEN_ORDERS",
    "MAX_WAITING_ORDERS",
    "Fill",
    "PaperBook",
    "PaperConfig",
    "Rejection",
    "execution_group",
    "pricing_options",
    "run_paper",
]
