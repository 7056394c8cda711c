"""The server log: what it leaves out, and what it says once at startup.

Freezer writes one line per sign-in, run start, finish, cull, replay and divergence, each with
the run id or the user (in :mod:`.auth`, :mod:`.handlers`, :mod:`.kernels`
and :mod:`runtime.web.voila`). Two lines of the parts it is built on would come with every
page or kernel and say nothing useful about an app:

- jupyter_server's "Notebook app.ipynb is not trusted", for every page Voila renders. Trust
  decides whether a notebook's *stored* outputs may run scripts; `app.ipynb` (written by
  `freezer build`) has one bootstrap cell and no stored outputs. Dropped by
  :class:`DropUntrustedNotebook`.
- ipykernel's "Kernel is running over TCP without encryption", printed by each kernel process
  to the server's stderr (outside this process's logging). The kernels listen on the loopback
  interface only, their connection files are in a private directory, and every message is
  signed with the kernel's own key. :data:`KERNEL_TRANSPORT_NOTE` says so once at startup.
"""

from __future__ import annotations

import logging

from tornado.log import app_log

UNTRUSTED_NOTEBOOK = "Notebook %s is not trusted"
KERNEL_TRANSPORT_NOTE = (
    "kernels talk to this server over loopback TCP with signed messages; the 'Kernel is "
    "running over TCP without encryption' line each kernel prints is expected"
)


class DropUntrustedNotebook(logging.Filter):
    """Drops jupyter_server's per-page "Notebook %s is not trusted" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != UNTRUSTED_NOTEBOOK


def quiet_server_log(log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
    """Install the filters of this module on the server's logger, and have the request
    handlers' log (Tornado's `tornado.application`, which jupyter_server's handlers use when no
    traitlets application singleton exists) write where the server's does (idempotent)."""
    logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    if not any(isinstance(f, DropUntrustedNotebook) for f in logger.filters):
        logger.addFilter(DropUntrustedNotebook())
    if logger.handlers and app_log.handlers != logger.handlers:
        app_log.handlers = list(logger.handlers)
        app_log.setLevel(logger.level)
        app_log.propagate = False
