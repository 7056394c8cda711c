"""The `freezer` command: dispatches to one module per subcommand.

Each subcommand is a function `main(argv: list[str]) -> int` that parses its own arguments
(with `prog="freezer NAME"`), so `freezer NAME --help` explains that command alone. Modules are
imported only when their command runs, so `freezer plan` does not pay for importing the server.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from freezer import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("freezer.commands", "Compile a notebook into an app directory."),
    "plan": ("freezer.commands", "Print how a notebook splits into stages; write nothing."),
    "serve": ("runtime.web.app", "Serve an app directory to many people, each with their own run."),
    "preview": ("freezer.preview", "Build a notebook to a temporary app and serve it locally."),
    "export": ("runtime.store.exporting", "Export every run of an app (CSV or JSON)."),
    "runs": ("runtime.store.exporting", "List the runs of an app, one line each."),
    "db": ("runtime.store.dbcommand", "Upgrade an app's database to this schema, or show it."),
}

USAGE = """usage: freezer COMMAND [options]

Turn an interactive notebook pipeline into a multi-user web app.

commands:
{commands}

Run `freezer COMMAND --help` for the options of one command.
"""


def usage() -> str:
    """The top-level help text."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def resolve(name: str) -> Callable[[list[str]], int]:
    """Import the module of command `name` and return its `<name>_main` function."""
    module = importlib.import_module(COMMANDS[name][0])
    func: Callable[[list[str]], int] = getattr(module, f"{name}_main")
    return func


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `freezer` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"freezer {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"freezer: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return resolve(name)(rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
