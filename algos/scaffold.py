"""`tickbus new algo NAME`: write a ready-to-serve algorithm and its test.

A newcomer starts from something that runs: ``NAME.py`` holds a small real
strategy (a subclass of `algos.Algorithm` with one param) and
``test_NAME.py`` its unit test; the command prints the commands that run
the test, serve the algorithm and bridge it to the bus.

Serve what it writes with ``tickbus algo serve NAME:ClassName --app-dir DIR``.
"""

from __future__ import annotations

import importlib.metadata
import keyword
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from algos._scaffold_template import ALGORITHM, TEST
from tickbus.errors import ConfigError

__all__ = [
    "Scaffold",
    "check_module_name",
    "class_name_for",
    "new_group",
    "next_steps",
    "plan_algorithm",
    "write_scaffold",
]

_TEMPLATE_NAMES = frozenset({"Algorithm", "Order", "Mapping", "Any", "annotations"})
"""Names the generated module imports: a class of the same name would shadow one."""

_EXAMPLE_ADDR = "tcp://127.0.0.1:4300"
"""The server address the printed next commands use, as the README does."""


@dataclass(frozen=True)
class Scaffold:
    """What `tickbus new algo` writes.

    Attributes:
        name: The module name, e.g. ``"my_algo"``.
        class_name: The algorithm's class, e.g. ``"MyAlgo"``.
        directory: Where the files go, as the user gave it.
        files: Each file's path (inside `directory`) and its text, the
            algorithm first, then its test.
    """

    name: str
    class_name: str
    directory: Path
    files: tuple[tuple[Path, str], ...]

    @property
    def spec(self) -> str:
        """``module:Class``, as ``tickbus algo serve`` takes it."""
        return f"{self.name}:{self.class_name}"


def class_name_for(name: str) -> str:
    """The CapWords class name for module `name`: ``my_algo`` gives ``MyAlgo``.

    Each part between underscores gets an upper-case first letter; the rest
    of the part is kept (``myAlgo`` gives ``MyAlgo``, ``algo_2`` ``Algo2``).

    Raises:
        ConfigError: `name` is not a usable module name (see `check_module_name`),
            or the class name would shadow a name the generated module imports.
    """
    check_module_name(name)
    class_name = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    if not class_name.isidentifier():
        raise ConfigError(f"{name!r} gives no usable class name ({class_name!r})")
    if class_name in _TEMPLATE_NAMES:
        raise ConfigError(
            f"{name!r} gives the class {class_name!r}, which would shadow the "
            f"{class_name!r} the generated module imports; pick another name"
        )
    return class_name


def check_module_name(name: str) -> None:
    """Refuse a NAME that cannot be imported as a module of its own.

    A usable name is a Python identifier, not a keyword, and not the name of
    a standard-library module or of an installed package: ``--app-dir`` puts
    the directory first on ``sys.path``, so such a file would hide the real
    module (a file ``algos.py`` would even hide tickbus's own ``algos``).

    Raises:
        ConfigError: The reason names the problem and, for a name with
            dashes, dots or spaces, suggests one with underscores.
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        suggestion = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        hint = f" (e.g. {suggestion!r})" if suggestion.isidentifier() else ""
        raise ConfigError(
            f"{name!r} is not a valid Python module name: use letters, digits and "
            f"underscores, not starting with a digit, and not a keyword{hint}"
        )
    where = (
        "the standard library"
        if name in sys.stdlib_module_names
        else "an installed package"
        if name in _installed_top_level_names()
        else None
    )
    if where is not None:
        raise ConfigError(
            f"{name!r} is already a module in {where}: a file {name}.py served with "
            "--app-dir would hide it; pick another name"
        )


def plan_algorithm(name: str, directory: Path) -> Scaffold:
    """The files `tickbus new algo NAME --dir DIRECTORY` writes, not yet written.

    Raises:
        ConfigError: `name` is not usable (see `class_name_for`).
    """
    class_name = class_name_for(name)
    fields = {"name": name, "cls": class_name}
    files = (
        (directory / f"{name}.py", ALGORITHM.substitute(fields)),
        (directory / f"test_{name}.py", TEST.substitute(fields)),
    )
    return Scaffold(name=name, class_name=class_name, directory=directory, files=files)


def write_scaffold(scaffold: Scaffold, *, force: bool = False) -> None:
    """Write every file of `scaffold`, creating its directory when missing.

    Nothing is written unless every file can be: without `force`, an
    existing file stops it before the first write.

    Raises:
        ConfigError: A file exists and `force` is False (the reason names
            each such file), or a path is taken by a directory.
        OSError: The directory cannot be created or a file cannot be written.
    """
    paths = [path for path, _text in scaffold.files]
    taken = [path for path in paths if path.is_dir()]
    if taken:
        raise ConfigError(f"{_names(taken)} is a directory; pick another NAME or --dir")
    existing = [path for path in paths if path.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise ConfigError(
            f"{_names(existing)} already {verb}: nothing written. Pick another NAME or "
            "--dir, or pass --force to overwrite"
        )
    scaffold.directory.mkdir(parents=True, exist_ok=True)
    for path, text in scaffold.files:
        path.write_text(text, encoding="utf-8")


def next_steps(scaffold: Scaffold) -> str:
    """What to run next, as commands to copy: test, serve, bridge, send a quote.

    The directory is quoted for a POSIX shell and kept as the user gave it,
    so the commands work from the directory `tickbus new` ran in.
    """
    directory = shlex.quote(str(scaffold.directory))
    test_file = shlex.quote(str(scaffold.files[1][0]))
    orders_topic = f"orders/{scaffold.name}"
    return "\n".join(
        [
            "Next, run its test:",
            f"  python -m pytest {test_file}",
            "Serve it:",
            f"  tickbus algo serve {scaffold.spec} --app-dir {directory} "
            f"--addr {_EXAMPLE_ADDR} --param drop_pct=1",
            "Bridge it to the bus, in another terminal, with a broker up (`tickbus broker`, "
            "or the whole stack: `tickbus up`):",
            f"  tickbus bridge --rpc {_EXAMPLE_ADDR} --name {scaffold.name}",
            "Watch its orders, in another terminal:",
            f"  mosquitto_sub -t {orders_topic} -v",
            "Send it a 3 % drop:",
            "  mosquitto_pub -t quotes -m '{\"goog\": 100}' && "
            "mosquitto_pub -t quotes -m '{\"goog\": 97}'",
        ]
    )


def _installed_top_level_names() -> set[str]:
    return set(importlib.metadata.packages_distributions())


def _names(paths: list[Path]) -> str:
    return " and ".join(str(path) for path in paths)


@click.group(name="new")
def new_group() -> None:
    """Start something new from a template that runs."""


@new_group.command(name="algo")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write NAME.py and test_NAME.py; created when missing.",
)
@click.option("--force", is_flag=True, help="Overwrite NAME.py and test_NAME.py if they exist.")
def algo_command(name: str, directory: Path, force: bool) -> None:
    """Write NAME.py, an algorithm ready to serve, and test_NAME.py, its test.

    NAME is a Python module name, e.g. my_algo: the class is then MyAlgo,
    served with `tickbus algo serve my_algo:MyAlgo --app-dir DIR`. The
    algorithm buys a symbol after a drop of drop_pct % and sells it when the
    price is back; change it from there. Existing files are not overwritten
    unless --force.
    """
    try:
        scaffold = plan_algorithm(name, directory)
    except ConfigError as exc:
        raise click.BadParameter(exc.reason, param_hint="NAME") from exc
    try:
        write_scaffold(scaffold, force=force)
    except ConfigError as exc:
        raise click.ClickException(exc.reason) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write to {directory}: {exc}") from exc
    for path, _text in scaffold.files:
        click.echo(f"wrote {path}")
    click.echo()
    click.echo(next_steps(scaffold))
