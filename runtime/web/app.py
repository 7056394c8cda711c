"""`freezer serve APP`: the multi-user server, built on Voila's application.

:class:`FreezerApp` is Voila's application with Freezer's configuration (traitlets, so every
option is also a command-line flag: `freezer serve --help`), Freezer's kernel manager
(:class:`runtime.web.jupyter.RunKernelManager`), kernel websocket connection
(:class:`runtime.web.websocket.RunWebsocketConnection`) and identity provider
(:class:`runtime.web.auth.FreezerIdentityProvider`), and Freezer's pages in front of what it keeps
of Voila's routes. Startup is the list of `init_*` steps in :meth:`FreezerApp.serve`; what they
do with Voila's internals is in :mod:`runtime.web.voila`. The runs themselves are the run
service's (:class:`runtime.runs.service.RunService`), which every handler gets from its route.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import sys
import tempfile
from argparse import ArgumentError
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from tornado.httpserver import HTTPServer
from traitlets import TraitError, Unicode, default
from voila.app import Voila

from runtime import manifest as manifest_module
from runtime.errors import RuntimeAppError, StoreError
from runtime.manifest import FILES_DIR, Manifest, ManifestError
from runtime.runs.journal import Journal
from runtime.runs.policy import KernelPolicy
from runtime.runs.runfiles import RunFiles, run_files_root, sweep_forever
from runtime.runs.service import RunService
from runtime.store.schema import SchemaBehindError, SchemaError, upgrade_advice
from runtime.store.store import Store
from runtime.web.auth import FreezerIdentityProvider, LoginHandler, LogoutHandler
from runtime.web.config import DeploymentOptions, listen, load_app_config, shutdown_within
from runtime.web.handlers import (
    FaviconHandler,
    GoBackHandler,
    HealthHandler,
    KernelModelHandler,
    NewRunHandler,
    Pages,
    RunListHandler,
)
from runtime.web.jupyter import RunKernelManager
from runtime.web.options import SERVE_ALIASES, SERVE_FLAGS, ServeOptions
from runtime.web.runfile_handlers import RunFileHandler
from runtime.web.serve_cli import CommandLineError, ListenError, listen_error, option_error
from runtime.web.server_log import KERNEL_TRANSPORT_NOTE, quiet_server_log
from runtime.web.voila import (
    KERNEL_ID,
    PageCache,
    make_connection_dir,
    parse_voila_command_line,
    refresh_voila_configuration,
    run_page_route,
    use_app_notebook,
    voila_app_config,
    voila_routes,
    voila_settings,
    voila_web_app,
)
from runtime.web.websocket import RunWebsocketConnection

RUN_ID = r"(?P<run_id>[A-Za-z0-9_-]{1,64})"


class AppDirError(RuntimeAppError):
    """The directory given to `freezer serve` is not a servable app."""


class DatabaseOpenError(RuntimeAppError):
    """The database cannot be opened or written to at startup."""


class FreezerApp(ServeOptions, DeploymentOptions, Voila):  # type: ignore[misc]
    """Serve one app directory to many people, each with their own run and kernel."""

    name = "freezer-serve"
    description = Unicode(
        "freezer serve APP [options]\n\nServe an app directory (from `freezer build`) to many "
        "people, each with their own run and kernel; progress is saved in a database."
    )
    examples = "freezer serve app/ --port 8866 --auth name --admin-token s3cret"

    aliases = SERVE_ALIASES
    flags = SERVE_FLAGS
    classes: list[type] = []

    option_description = Unicode(
        "APP: the app directory to serve, made by `freezer build NOTEBOOK -o APP` "
        "(it holds app.json and app.ipynb)."
    )

    @default("port_retries")
    def _default_port_retries(self) -> int:
        return 0

    @default("connection_dir_root")
    def _default_connection_dir_root(self) -> str:
        return tempfile.gettempdir()  # Voila logs this at startup; it is no one's business

    # set by initialize() / serve()
    app_dir: Path
    manifest: Manifest
    store: Store
    journal: Journal
    runs: RunService
    pages: Pages
    run_files: RunFiles
    sweeper: asyncio.Task[None] | None = None
    http_server: HTTPServer | None = None

    # --- configuration -----------------------------------------------------------------------

    def initialize(self, argv: list[str] | None = None) -> None:
        """Parse the command line and check the app directory (raises :class:`AppDirError`)."""
        self.update_config(voila_app_config())
        self.kernel_websocket_connection_class = RunWebsocketConnection
        self.identity_provider_class = FreezerIdentityProvider
        super().initialize(argv)
        self.init_app_dir()
        load_app_config(self, self.app_dir, self.config_file, refresh_voila_configuration)
        notebook = self.app_dir / manifest_module.NOTEBOOK_NAME
        use_app_notebook(self, notebook, self.show_tracebacks)
        path = str(self.base_url).strip("/")
        self.set_trait("base_url", f"/{path}/" if path else "/")

    def parse_command_line(self, argv: list[str] | None = None) -> None:
        """traitlets' parsing, with a bad option value as :class:`CommandLineError` (one line,
        exit status 2) instead of a CRITICAL log line and exit status 1."""
        try:
            parse_voila_command_line(self, argv)
        except (TraitError, ArgumentError) as exc:
            raise CommandLineError(option_error(str(exc), self.aliases)) from None

    def init_app_dir(self) -> None:
        """Load and check `APP/app.json` and `APP/app.ipynb`."""
        if len(self.extra_args) != 1:
            raise AppDirError("give one app directory (made by `freezer build NOTEBOOK -o APP`)")
        app_dir = Path(self.extra_args[0]).resolve()
        if not app_dir.is_dir():
            raise AppDirError(f"{app_dir}: not a directory")
        self.manifest = manifest_module.load(app_dir)
        if not (app_dir / manifest_module.NOTEBOOK_NAME).is_file():
            notebook = app_dir / manifest_module.NOTEBOOK_NAME
            raise AppDirError(f"{notebook}: missing; rebuild the app")
        self.app_dir = app_dir
        self.root_dir = str(app_dir)

    @property
    def app_id(self) -> str:
        """The app_id of the manifest being served."""
        return self.manifest.app_id

    @property
    def title(self) -> str:
        """The app's title (from the notebook)."""
        return self.manifest.title or "Freezer"

    @property
    def database_url(self) -> str:
        """`--db`, or the SQLite file in the app directory."""
        return self.db_url or f"sqlite:///{self.app_dir / manifest_module.DATABASE_NAME}"

    # --- startup -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run the server until SIGINT or SIGTERM."""
        asyncio.run(self.serve())

    async def serve(self) -> None:
        """Start every part in order, serve until told to stop, then stop every part."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            self.init_connection_dir()
            await self.init_store()
            self.init_cookie_secret()
            self.init_run_files()
            settings = self.init_settings()
            self.init_kernels()
            self.init_web_app(settings)
            self.init_http_server()
            quiet_server_log(self.log)
            self.log.info(KERNEL_TRANSPORT_NOTE)
            await self.runs.start()
            self.log.info("Freezer is serving %r at %s", self.title, self.connection_url)
            self.open_in_browser()
            await stop.wait()
            self.log.info("stopping")
        finally:
            await shutdown_within(self.shutdown(), self.shutdown_timeout, self.log)

    def init_connection_dir(self) -> None:
        """A private directory for the kernels' connection files."""
        self.connection_dir = make_connection_dir(self.connection_dir_root)

    async def init_store(self) -> None:
        """Open the database, record this app version, start the journal writer."""
        try:
            self.store = await Store.open(self.database_url, upgrade=self.upgrade_db)
            await self.store.ensure_app(self.manifest)  # also fails on a read-only database
        except SchemaError:
            raise  # a usable database of another schema revision: serve_main says what to run
        except (StoreError, SQLAlchemyError) as exc:
            raise DatabaseOpenError(
                f"cannot use the database {shown_url(self.database_url)}: {exc} (check the "
                "path, and that the server may write the file and its directory)"
            ) from None
        self.journal = Journal(self.store)

    def init_run_files(self) -> None:
        """Each run's working directory, and the sweep that deletes those past retention."""
        root = run_files_root(self.app_dir, self.database_url, self.run_files_dir)
        self.run_files = RunFiles(root, self.app_dir / FILES_DIR)
        self.run_files.start()
        if self.run_files_retention > 0:
            self.sweeper = asyncio.create_task(sweep_forever(
                self.store, self.run_files, self.run_files_retention, self.log
            ), name="run files sweeper")

    def init_cookie_secret(self) -> None:
        """The key that signs cookies, kept in the app directory so sign-ins survive restarts."""
        path = self.app_dir / manifest_module.COOKIE_SECRET_FILE
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            secret = secrets.token_bytes(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secret)
            except OSError as exc:
                self.log.warning("cannot keep the cookie secret in %s (%s): people will have "
                                 "to sign in again after a restart", path, exc)
        self.cookie_secret = secret

    def init_settings(self) -> dict[str, Any]:
        """Voila's Tornado settings, with Freezer's browser allowlist and cookie options; the
        identity provider Voila made reads the users from the store."""
        settings = voila_settings(self, self.show_tracebacks)
        provider: FreezerIdentityProvider = self.identity_provider
        provider.use_store(self.store)
        settings["xsrf_cookie_kwargs"] = {"samesite": "Lax", "path": self.base_url}
        settings["freezer_max_message_size"] = self.max_message_size
        settings["freezer_flood_rate"] = self.flood_rate
        self.pages = Pages(self.base_url, self.title)
        return settings

    def init_kernels(self) -> None:
        """The run service over the kernel manager: pool, run mapping, cull and cap; the
        manager reports websockets and kernel deaths to it."""
        manager: RunKernelManager = self.kernel_manager
        if self.kernel_start == "fork":
            manager.fork_kernels()
        policy = KernelPolicy(
            max_kernels=self.max_kernels, cull_idle_timeout=self.cull_idle_timeout
        )
        self.runs = RunService(
            manager,
            self.store,
            self.journal,
            self.manifest,
            self.app_dir,
            Path(self.connection_dir) / "versions",
            policy=policy,
            pool_size=self.pool_size,
            show_tracebacks=self.show_tracebacks,
            kernel_timeout=self.kernel_timeout,
            log=self.log,
            stage_timeout=self.stage_timeout,
            run_files=self.run_files,
            kernel_deaths_per_stage=self.kernel_deaths_per_stage,
        )
        manager.report_to(self.runs)

    def init_web_app(self, settings: dict[str, Any]) -> None:
        """The Tornado application with Freezer's routes first, then the Voila routes kept."""
        self.app = voila_web_app(self, settings, self.init_handlers())

    def init_handlers(self) -> list[Any]:
        """Freezer's routes under the base URL, admin's if installed, Voila's assets."""
        prefix = self.server_url.rstrip("/")
        own = {"runs": self.runs, "pages": self.pages}
        sign_in = {"store": self.store, "pages": self.pages, "auth": self.auth,
                   "admin_token": self.admin_token, "base_url": self.base_url}
        routes: list[Any] = [
            (prefix + "/", RunListHandler, own),
            (prefix + "/new", NewRunHandler, own),
            run_page_route(self, prefix + f"/run/{RUN_ID}/?", self.runs, self.pages, PageCache(),
                           manifest_module.NOTEBOOK_NAME),
            (prefix + f"/run/{RUN_ID}/(?P<path>.+)", RunFileHandler, own),
            (prefix + f"/back/{RUN_ID}", GoBackHandler, own),
            (prefix + "/login", LoginHandler, sign_in),
            (prefix + "/logout", LogoutHandler, {"base_url": self.base_url}),
            (prefix + "/health", HealthHandler, own),
            (prefix + r"/(favicon\.svg|favicon\.ico)", FaviconHandler, own),
            (prefix + f"/api/kernels/{KERNEL_ID}", KernelModelHandler, own),
        ]
        if importlib.util.find_spec("runtime.web.admin") is not None:
            from runtime.web.admin import admin_routes

            routes.extend(admin_routes(self.server_url, self.store, self.title, self.run_files))
        return routes + voila_routes(self, self.runs)

    def init_http_server(self) -> None:
        """Listen on `--ip`:`--port`."""
        try:
            self.http_server = listen(self.app, self.port, self.ip, trust_proxy=self.trust_proxy)
        except OSError as exc:
            raise listen_error(exc, self.ip, self.port) from None

    def open_in_browser(self) -> None:
        if self.open_browser:
            import webbrowser

            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(self.connection_url)

    async def shutdown(self) -> None:
        """Stop taking requests, then stop kernels, journal and store, in that order."""
        if self.http_server is not None:
            self.http_server.stop()
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        if getattr(self, "runs", None) is not None:
            await self.runs.stop()
        if getattr(self, "journal", None) is not None:
            await self.journal.close()
        if getattr(self, "store", None) is not None:
            await self.store.close()
        if getattr(self, "connection_dir", ""):
            shutil.rmtree(self.connection_dir, ignore_errors=True)


def shown_url(url: str) -> str:
    """A database URL fit for a message: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "given with --db"


def serve_main(argv: list[str]) -> int:
    """`freezer serve APP [options]`; returns the exit status."""
    app = FreezerApp()
    try:
        app.initialize(argv)
    except SystemExit as exc:  # --help, or traitlets' own argument errors
        return exc.code if isinstance(exc.code, int) else 2
    except (RuntimeAppError, ManifestError, ValueError) as exc:
        print(f"freezer serve: {exc}", file=sys.stderr)
        return 2
    try:
        app.start()
    except ListenError as exc:
        print(f"freezer serve: {exc}", file=sys.stderr)
        return 2
    except DatabaseOpenError as exc:
        print(f"freezer serve: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the database's schema is not this Freezer's
        advice = ""
        if isinstance(exc, SchemaBehindError):
            advice = "; " + upgrade_advice(app.extra_args[0], app.db_url, "serve with --upgrade-db")
        print(f"freezer serve: {exc}{advice}", file=sys.stderr)
        return 2
    return 0
