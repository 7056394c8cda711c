"""Fixtures of the deployment tests: the labeling example built once, nginx in front of
`freezer serve`, a browser that trusts the test's own TLS certificate.

- `labeling_app` — `examples/labeling.ipynb` built into an app directory (once per session).
- `server_python` — the Python that serves it: this environment's, or with
  `FREEZER_TEST_VENV=1` a fresh virtual environment made from the app's `requirements.txt`
  alone (Freezer from a wheel of this checkout, the other pins from the package index).
- `start_server(python, app_dir, *args, port=None)` — `freezer serve` as a child process,
  ready once `/health` answers under its base URL.
- `nginx(upstream_port)` — nginx on a free port with TLS and the proxy part of
  `deploy/nginx.conf`; skipped when nginx or openssl is not installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.eventually import eventually, run_async
from tests.support.processes import LOOPBACK, ServerProcess, free_port, start_freezer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "labeling.ipynb"
NGINX_SITE = ROOT / "deploy" / "nginx.conf"
PREFIX = "/labeling/"
UPSTREAM_IN_SITE = "127.0.0.1:8866"
SERVER_START_TIMEOUT = 90.0
VENV_TIMEOUT = 900.0  # seconds for pip to build the environment (downloads when not cached)
VENV_FLAG = "FREEZER_TEST_VENV"



@pytest.fixture(scope="session")
def labeling_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The labeling example, built with `freezer build`."""
    from freezer.commands import build_main  # only the tests that need an app build one

    app = tmp_path_factory.mktemp("deploy") / "labeling"
    assert build_main([str(EXAMPLE), "-o", str(app)]) == 0
    return app


def make_venv(app_dir: Path, where: Path) -> Path:
    """A virtual environment with only what `APP/requirements.txt` names; its python."""
    wheels = where / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                   check=True, timeout=VENV_TIMEOUT)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=VENV_TIMEOUT)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--find-links", str(wheels),
         "-r", str(app_dir / "requirements.txt")],
        check=True, timeout=VENV_TIMEOUT,
    )
    return python


@pytest.fixture(scope="session")
def server_python(labeling_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter whose `freezer` serves the app (see the module docstring)."""
    if os.environ.get(VENV_FLAG) != "1":
        return Path(sys.executable)
    return make_venv(labeling_app, tmp_path_factory.mktemp("venv"))


def start_server(
    python: Path, app_dir: Path, *args: str, port: int | None = None
) -> ServerProcess:
    """`freezer serve APP --base-url /labeling/ ...` on a loopback port, once it answers."""
    server = start_freezer(app_dir, port=port, extra_args=args, base_url=PREFIX, python=python,
                           cwd=app_dir)
    return server.wait_ready_sync(SERVER_START_TIMEOUT)


@dataclass
class Nginx:
    """A running nginx in front of one upstream server."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        """The app's address through the proxy."""
        return f"https://{LOOPBACK}:{self.port}{PREFIX}"

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def proxy_part_of_site(upstream_port: int) -> tuple[str, str]:
    """The `map` block and the location blocks of `deploy/nginx.conf`, pointed at the test
    server."""
    site = NGINX_SITE.read_text()
    map_block = site[site.index("map $http_upgrade"):]
    map_block = map_block[: map_block.index("}") + 1]
    locations = site.split("# freezer: begin", 1)[1].split("# freezer: end", 1)[0]
    assert UPSTREAM_IN_SITE in locations, "deploy/nginx.conf no longer proxies to port 8866"
    return map_block, locations.replace(UPSTREAM_IN_SITE, f"{LOOPBACK}:{upstream_port}")


def nginx_config(directory: Path, port: int, upstream_port: int) -> str:
    map_block, locations = proxy_part_of_site(upstream_port)
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""
daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {directory / "access.log"};
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    {map_block}
    server {{
        listen {LOOPBACK}:{port} ssl;
        server_name localhost;
        ssl_certificate {directory / "cert.pem"};
        ssl_certificate_key {directory / "key.pem"};
        {locations}
    }}
}}
"""


def self_signed_certificate(directory: Path) -> None:
    """A throw-away certificate for 127.0.0.1 (the test browser ignores that nobody signed it)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={LOOPBACK}",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )


async def wait_listening(nginx: Nginx, timeout: float = 30.0) -> None:
    """Return once nginx accepts connections on its port."""

    async def accepts() -> bool:
        if nginx.process.poll() is not None:
            raise AssertionError(f"nginx exited ({nginx.process.returncode}):\n"
                                 f"{nginx.error_log()}")
        try:
            _, writer = await asyncio.open_connection(LOOPBACK, nginx.port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(accepts, f"nginx to accept connections on port {nginx.port}", timeout)


@pytest.fixture(scope="module")
def nginx() -> Iterator[Callable[[int], Nginx]]:
    """Factory: `nginx(upstream_port)` -> nginx proxying `/labeling/` to that port over TLS."""
    executable = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None)
    if executable is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; `make browser`)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test's TLS certificate)")
    started: list[Nginx] = []

    def start(upstream_port: int) -> Nginx:
        directory = Path(tempfile.mkdtemp(prefix="freezer-nginx-"))
        self_signed_certificate(directory)
        port = free_port()
        config = directory / "nginx.conf"
        config.write_text(nginx_config(directory, port, upstream_port))
        process = subprocess.Popen(
            [executable, "-p", str(directory), "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proxy = Nginx(process, port, directory)
        started.append(proxy)
        run_async(wait_listening(proxy))
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.process.terminate()
            try:
                proxy.process.wait(30)
            except subprocess.TimeoutExpired:
                proxy.process.kill()
                proxy.process.wait(30)
            shutil.rmtree(proxy.directory, ignore_errors=True)
