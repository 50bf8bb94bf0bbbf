"""What bench/backtest.py and bench/sweep.py share: command line, work directory, output."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

LEFT_OUT_OF_TEXT = ("runs", "settings", "machine")
"""Keys printed only with --json."""


def run_bench(name: str, doc: str, run: Callable[[bool, Path], dict[str, Any]]) -> None:
    """Parse ``--json`` and ``--quick``, call ``run(quick, work)`` in a temporary directory, print.

    The directory is removed afterwards, whatever happens. With ``--json`` the
    figures are printed as one JSON object; otherwise one ``key: value`` line
    each, without the bulky keys.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"tickbus-bench-{name}-"))
    try:
        results = run(args.quick, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            if key not in LEFT_OUT_OF_TEXT:
                print(f"{key}: {value}")


def package_versions(*packages: str) -> dict[str, str]:
    """Each package's installed version, or ``"not installed"``."""
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
