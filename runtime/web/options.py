"""The options of `freezer serve`: the traits of :class:`ServeOptions`, and their flags.

:class:`ServeOptions` is mixed into :class:`runtime.web.app.FreezerApp` (with the deployment
options of :mod:`runtime.web.config`), so each option is a command-line flag, a config-file entry
(`c.FreezerApp.pool_size = 2`) and a `--help-all` line; every trait's help says its unit, its
default and what 0 or empty means.
"""

from __future__ import annotations

import logging

from traitlets import Bool, Enum, Float, Integer, Unicode
from traitlets.config import Configurable

from runtime.runs.forking import KERNEL_START_ENV, KERNEL_STARTS, default_kernel_start
from runtime.web.auth import AUTH_MODES
from runtime.web.config import DEPLOY_ALIASES, DEPLOY_FLAGS

SERVE_ALIASES = {
    "port": "FreezerApp.port",
    "ip": "FreezerApp.ip",
    "db": "FreezerApp.db_url",
    "auth": "FreezerApp.auth",
    "admin-token": "FreezerApp.admin_token",
    "pool-size": "FreezerApp.pool_size",
    "max-kernels": "FreezerApp.max_kernels",
    "cull-idle-timeout": "FreezerApp.cull_idle_timeout",
    "kernel-timeout": "FreezerApp.kernel_timeout",
    "stage-timeout": "FreezerApp.stage_timeout",
    "run-files-dir": "FreezerApp.run_files_dir",
    "run-files-retention": "FreezerApp.run_files_retention",
    "kernel-deaths-per-stage": "FreezerApp.kernel_deaths_per_stage",
    "kernel-start": "FreezerApp.kernel_start",
    "base-url": "FreezerApp.base_url",
    **DEPLOY_ALIASES,
}
SERVE_FLAGS = {
    "show-tracebacks": (
        {"FreezerApp": {"show_tracebacks": True}},
        "Show full tracebacks of failing stages to the people using the app.",
    ),
    "no-browser": (
        {"FreezerApp": {"open_browser": False}},
        "Do not open a web browser on startup.",
    ),
    "debug": ({"FreezerApp": {"log_level": logging.DEBUG}}, "Log at debug level."),
    "upgrade-db": (
        {"FreezerApp": {"upgrade_db": True}},
        "Migrate the database to this Freezer's schema revision before serving.",
    ),
    **DEPLOY_FLAGS,
}


class ServeOptions(Configurable):
    """What `freezer serve` can be told: database, sign-in, kernels, run files, address."""

    db_url = Unicode(
        "",
        config=True,
        help="Database (any SQLAlchemy URL, e.g. postgresql://user@host/db). "
        "Default (empty): sqlite:///APP/freezer.db in the app directory.",
    )
    auth = Enum(
        list(AUTH_MODES),
        default_value="none",
        config=True,
        help="How people sign in. none (default): an anonymous identity per browser; "
        "name: a sign-in form asking for a name; token: invite tokens only.",
    )
    admin_token = Unicode(
        "",
        config=True,
        help="A token that signs in the admin (/login?token=T), who can open /admin. "
        "Default (empty): nobody can sign in as admin with a token.",
    )
    pool_size = Integer(
        1,
        config=True,
        help="Kernels kept started and prepared (imports and warm cells run) for the next "
        "new run. Default 1; 0 turns the pool off.",
    )
    max_kernels = Integer(
        0,
        config=True,
        help="Most kernels alive at once, pool included. Beyond it the least recently used "
        "kernel without a page is shut down (its run replays later); when every kernel has a "
        "page, people get a 'busy, retrying' page. Default 0: no cap.",
    )
    cull_idle_timeout = Float(
        600.0,
        config=True,
        help="Seconds a run's kernel may stay without any page attached before it is shut "
        "down (the run stays in the database and replays on return). Default 600; 0: never.",
    )
    kernel_timeout = Float(
        120.0,
        config=True,
        help="Seconds the server waits for a kernel on each step it drives (prepare, "
        "configure, each replayed event). Default 120.",
    )
    stage_timeout = Float(
        0.0,
        config=True,
        help="Seconds one stage may run before the kernel is interrupted and the person is told "
        "(the run stays usable; Next retries the stage). Default 0: no limit.",
    )
    run_files_dir = Unicode(
        "",
        config=True,
        help="Where each run's working directory is kept (DIR/<run_id>/, seeded from the app's "
        "files/). Default (empty): runs/ beside the SQLite database, which is APP/runs/ for the "
        "default database (a rebuild keeps it); APP/runs/ for other databases.",
    )
    run_files_retention = Float(
        30.0,
        config=True,
        help="Days the working directory of an abandoned run (one its person started over) is "
        "kept after its last activity; then the server deletes it. Finished and active runs "
        "keep theirs. Default 30; 0: never delete (`freezer runs APP --prune` still does).",
    )
    upgrade_db = Bool(
        False,
        config=True,
        help="Migrate an older database to this Freezer's schema revision at startup "
        "(as `freezer db upgrade APP` does). Default: an older database stops the server.",
    )
    kernel_deaths_per_stage = Integer(
        3,
        config=True,
        help="Times in a row a run's kernel may die while the same stage runs (the stage ends "
        "its process: os._exit, a crash, too little memory) before the run is marked failed "
        "and the person told so. Default 3; 0: never fail a run for it.",
    )
    kernel_start = Enum(
        list(KERNEL_STARTS),
        default_value=default_kernel_start(),
        config=True,
        help="How a kernel process starts. fork: forked from a parent process per app version "
        "that has imported ipykernel, ipywidgets and what the app's freeze:warm cells import "
        "(Linux; a kernel that cannot be forked is spawned and the log says why); spawn: a new "
        f"Python for each kernel. Default spawn, or the value of ${KERNEL_START_ENV}.",
    )
    show_tracebacks = Bool(
        False,
        config=True,
        help="Show full tracebacks of failing stages to people (default: a one-line error; "
        "tracebacks go to the log and the database either way).",
    )

    port = Integer(8866, config=True, help="Port to listen on. Default 8866.")
    ip = Unicode(
        "127.0.0.1",
        config=True,
        help="Address to listen on. Default 127.0.0.1 (this machine only); 0.0.0.0: every "
        "address of the machine (put a reverse proxy with TLS in front, see DEPLOY.md).",
    )
    base_url = Unicode(
        "/",
        config=True,
        help="The path the app is served under, e.g. /labeling/ behind a reverse proxy that "
        "serves several apps on one host. Default /.",
    )
