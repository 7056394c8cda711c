"""`runtime.web.config.listen` on a tiny Tornado app: forwarded headers count only when trusted;
cookies become Secure when the person's protocol is https. And the shutdown bound."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient

from runtime.web.config import listen, secure_cookies
from tests.support.processes import LOOPBACK, free_port

FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "labs.example.org",
}


class EchoHandler(web.RequestHandler):
    """Says what the server believes about the request; sets two cookies."""

    def get(self) -> None:
        self.set_cookie("plain", "1", httponly=True)
        self.set_cookie("already", "1", secure=True)
        self.finish({"remote_ip": self.request.remote_ip, "protocol": self.request.protocol,
                     "host": self.request.host})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[bool], str]]:
    """Factory: `serve(trust_proxy)` -> the URL of an EchoHandler server."""
    servers = []

    def start(trust_proxy: bool) -> str:
        port = free_port()
        servers.append(listen(web.Application([("/", EchoHandler)]), port, LOOPBACK,
                              trust_proxy=trust_proxy))
        return f"http://{LOOPBACK}:{port}/"

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
            await server.close_all_connections()


async def test_a_trusted_proxy_gives_address_protocol_host_and_secure_cookies(
    serve: Callable[[bool], str],
) -> None:
    response = await AsyncHTTPClient().fetch(serve(True), headers=FORWARDED)
    seen = json.loads(response.body)
    assert seen == {"remote_ip": "198.51.100.7", "protocol": "https", "host": "labs.example.org"}
    cookies = response.headers.get_list("Set-Cookie")
    assert len(cookies) == 2
    assert all(cookie.lower().count("secure") == 1 for cookie in cookies), cookies

    plain = await AsyncHTTPClient().fetch(serve(True), headers={"X-Forwarded-Proto": "http"})
    assert json.loads(plain.body)["protocol"] == "http"
    assert [c for c in plain.headers.get_list("Set-Cookie") if "secure" in c.lower()] == [
        c for c in plain.headers.get_list("Set-Cookie") if c.startswith("already=")
    ]


async def test_forwarded_headers_are_ignored_without_trust(
    serve: Callable[[bool], str],
) -> None:
    url = serve(False)
    response = await AsyncHTTPClient().fetch(url, headers=FORWARDED)
    seen = json.loads(response.body)
    assert seen == {"remote_ip": LOOPBACK, "protocol": "http", "host": url.split("/")[2]}
    plain = [c for c in response.headers.get_list("Set-Cookie") if c.startswith("plain=")]
    assert plain and "secure" not in plain[0].lower()


def test_secure_cookies_keeps_other_headers() -> None:
    headers = httputil.HTTPHeaders({"Content-Type": "text/html"})
    headers.add("Set-Cookie", "a=1; Path=/")
    headers.add("Set-Cookie", "b=2; Secure; Path=/")
    secure_cookies(headers)
    assert headers.get_list("Set-Cookie") == ["a=1; Path=/; Secure", "b=2; Secure; Path=/"]
    assert headers["Content-Type"] == "text/html"


# In a process of its own: on timeout, shutdown_within kills every child of the process.
STUCK_SHUTDOWN = """
import asyncio, logging, subprocess, sys
from runtime.web.config import child_processes, shutdown_within

async def main():
    # a stand-in kernel: a child process leading its own process group, as kernels do
    kernel = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"],
                              start_new_session=True)
    assert kernel.pid in child_processes()
    on_time = await shutdown_within(asyncio.sleep(0), 5, logging.getLogger())
    never = asyncio.Event()
    late = await shutdown_within(never.wait(), 0.5, logging.getLogger())
    status = await asyncio.to_thread(kernel.wait, 30)
    print(on_time, late, status)

asyncio.run(main())
"""


def test_a_shutdown_over_its_bound_kills_the_kernels_left() -> None:
    done = subprocess.run([sys.executable, "-c", STUCK_SHUTDOWN], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "-9"]
    assert "shutdown took longer than 0.5 s; killing 1 kernel processes" in done.stderr
