"""Quote publishers: a synthetic random walk, CSV replay and replay of a recorded dataset.

Public API: the configs, the loops that run them, the random walk and the
CSV reader (both usable without a broker), and the click group.
"""

from feeds._cli import feed_group
from feeds._config import CsvFeedConfig, SyntheticFeedConfig
from feeds._csv import CsvRow, read_csv_quotes
from feeds._replay import ReplayFeedConfig, publish_paced, run_replay
from feeds._run import run_csv, run_synthetic
from feeds._walk import RandomWalk

__all__ = [
    "CsvFeedConfig",
    "CsvRow",
    "RandomWalk",
    "ReplayFeedConfig",
    "SyntheticFeedConfig",
    "feed_group",
    "publish_paced",
    "read_csv_quotes",
    "run_csv",
    "run_replay",
    "run_synthetic",
]
