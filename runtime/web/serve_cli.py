"""What `freezer serve` says on its command line when it cannot start: one line, exit status 2.

- :class:`CommandLineError` — an option with a value it cannot take (`--auth foo`,
  `--port abc`): traitlets would log a "Bad config encountered" line at CRITICAL and exit 1;
  :func:`option_error` turns its message into `--auth: expected one of none, name, token, not
  'foo'`.
- :class:`ListenError` — the address or port cannot be listened on:
  `port 8866 is in use; pick another with --port`, not the bind traceback.
- :func:`with_article` — "an int", "a float": the article that fits the type name.
"""

from __future__ import annotations

import errno
import re

from runtime.errors import RuntimeAppError

TRAIT_ERROR = re.compile(
    r"The '(?P<trait>\w+)' trait of an? \w+ instance expected (?P<expected>.+?), "
    r"not the (?P<kind>\w+) (?P<value>.+?)\.?$",
    re.DOTALL,
)
CHOICES = re.compile(r"any of \[(?P<items>.*)\]")


class CommandLineError(RuntimeAppError):
    """An option of `freezer serve` has a value it cannot take."""


class ListenError(RuntimeAppError):
    """The server cannot listen on the address and port it was given."""


def with_article(noun: str) -> str:
    """`noun` with the article that fits it: "an int", "a float", "a str", "a NoneType"."""
    return f"{'an' if noun[:1].lower() in 'aeio' else 'a'} {noun}"


def option_error(message: str, aliases: dict[str, str]) -> str:
    """A traitlets error message as one line about the option as it is typed.

    `aliases` maps option names to traits (`{"auth": "FreezerApp.auth"}`).
    """
    match = TRAIT_ERROR.search(message)
    if match is None:
        return " ".join(message.split())
    trait = match["trait"]
    option = next(
        (f"--{name}" for name, target in aliases.items() if target.split(".")[-1] == trait),
        f"--{trait.replace('_', '-')}",
    )
    expected = match["expected"]
    choices = CHOICES.fullmatch(expected)
    if choices is not None:
        items = [item.strip().strip("'\"") for item in choices["items"].split(",")]
        expected = "one of " + ", ".join(items)
    return f"{option}: expected {expected}, not {match['value']}"


def listen_error(exc: OSError, address: str, port: int) -> ListenError:
    """The one line for a port or address the server cannot listen on."""
    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"port {port} is in use; pick another with --port")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ListenError(
            f"not allowed to listen on port {port} (ports below 1024 need privileges); "
            "pick another with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"cannot listen on {address}: not an address of this machine (--ip)")
    return ListenError(f"cannot listen on {address}:{port}: {exc.strerror or exc}")
