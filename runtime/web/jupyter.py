"""Every use of a jupyter_server or jupyter_client internal, in one place.

- :class:`RunKernelManager`: jupyter_server's kernel manager, the one Voila is configured with.
  It is the run service's :class:`runtime.runs.live.KernelProcesses` (it starts, checks and
  stops kernel processes) and it tells the service's :class:`KernelEvents` (given once, at app
  setup, with :meth:`RunKernelManager.report_to`) when a page's websocket attaches or detaches
  and when a kernel dies. It never starts a kernel on Voila's behalf: the run page handler puts
  the run's kernel id in :data:`page_kernel`, and Voila's `start_kernel` call returns it.
- :class:`ReadyKernelClient`: the kernel client Voila's executor gets for a page, without
  jupyter_client's fixed 0.2 s wait for a quiet iopub (the run's kernel is already up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextvars import ContextVar
from queue import Empty
from typing import Any, Protocol

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_client.session import new_id
from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import ApiPath
from tornado import web

from runtime.runs.forking import stop_parents, use_forking
from runtime.runs.kernel_start import kernel_process_id, process_ended

page_kernel: ContextVar[str | None] = ContextVar("freezer_page_kernel", default=None)
"""The kernel id the page being rendered must use (set by the run page handler)."""


class KernelEvents(Protocol):
    """Who hears of kernel websockets and deaths (the run service)."""

    def attach(self, kernel_id: str) -> None:
        """A page's websocket attached to the kernel."""

    def detach(self, kernel_id: str) -> None:
        """A page's websocket to the kernel closed."""

    def died(self, kernel_id: str) -> None:
        """The kernel's process is gone; the manager is removing it."""

    def forget(self, kernel_id: str) -> None:
        """The manager removed the kernel (shut down, or dead)."""


class RunKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel manager, told about runs: Voila gets the run's kernel, never a new
    one; websocket connects and disconnects, and kernel deaths, go to :attr:`events`."""

    events: KernelEvents | None = None

    def report_to(self, events: KernelEvents) -> None:
        """Send websocket and death reports to `events` from now on (set once, at app setup)."""
        self.events = events

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: str | None = None, **kwargs: Any
    ) -> str:
        """Called by Voila's page handler: return the kernel picked for the page's run."""
        bound = page_kernel.get()
        if bound is None or bound not in self:
            raise web.HTTPError(403, "kernels are started only for a run")
        return bound

    def fork_kernels(self) -> None:
        """Fork kernels from a warmed parent per app version (`--kernel-start fork`)."""
        use_forking(KernelProvisionerFactory.instance(parent=self.parent))

    # --- runtime.runs.live.KernelProcesses ---------------------------------------------------

    async def start_process(self, kernel_name: str, env: dict[str, str]) -> str:
        """Start a kernel for the run service (the only caller)."""
        kernel_id: str = await super()._async_start_kernel(
            kernel_name=kernel_name, path=ApiPath(""), env=env  # "": the app directory
        )
        return kernel_id

    def connection_info(self, kernel_id: str) -> KernelConnectionInfo:
        info: KernelConnectionInfo = self.get_kernel(kernel_id).get_connection_info()
        return info

    def process_id(self, kernel_id: str) -> int | None:
        try:
            return kernel_process_id(self.get_kernel(kernel_id))
        except (KeyError, web.HTTPError):
            return None

    async def kernel_alive(self, kernel_id: str) -> bool:
        try:
            kernel = self.get_kernel(kernel_id)
            if not await ensure_async(kernel.is_alive()):
                return False
        except (KeyError, web.HTTPError):  # jupyter_server: 404 for a kernel it removed
            return False
        # jupyter_client has been seen to call a SIGKILLed kernel alive (its process already a
        # zombie) until the restarter's next poll; the process table says otherwise.
        pid = kernel_process_id(kernel)
        return not (pid is not None and process_ended(pid))

    async def shut_down(self, kernel_id: str) -> None:
        with contextlib.suppress(KeyError, web.HTTPError):
            await self.shutdown_kernel(kernel_id, now=True)  # type: ignore[no-untyped-call]

    async def shut_down_all(self) -> None:
        await self.shutdown_all(now=True)
        stop_parents()

    # --- reports -----------------------------------------------------------------------------

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)  # type: ignore[no-untyped-call]
        if self.events is not None:
            self.events.attach(kernel_id)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)  # type: ignore[no-untyped-call]
        if self.events is not None:
            self.events.detach(kernel_id)

    def remove_kernel(self, kernel_id: str) -> Any:
        # jupyter_client's restarter (restart_limit 0: no restart) or the page's executor found
        # the kernel dead, or the run service shut it down (then it has forgotten it already)
        pid = kernel_process_id(self._kernels.get(kernel_id))
        if self.events is not None and pid is not None and process_ended(pid):
            self.events.died(kernel_id)
        removed = super().remove_kernel(kernel_id)
        if self.events is not None:
            self.events.forget(kernel_id)
        return removed


class ReadyKernelClient(AsyncKernelClient):
    """The kernel client of Voila's page executor (`ServerKernelManager.client_factory`).

    jupyter_client's `wait_for_ready` ends by reading iopub until it has been quiet for 0.2 s,
    a fixed cost on every page. Here the client is ready as soon as the iopub status of its own
    `kernel_info_request` arrives: the reply proves the shell works, the status that iopub is
    subscribed.

    Each client also gets a session id of its own. jupyter_client hands every client of a
    kernel manager the manager's session, and the session id is the shell socket's identity:
    two pages of one run rendered at once (two tabs, a double click, a proxy's retry) had two
    sockets with one identity, and the kernel's router sent both replies to one of them; the
    other page waited for its reply forever.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        session = self.session.clone()
        session.session = new_id()
        self.session = session

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (60.0 if timeout is None else timeout)
        while True:
            msg_id = self.kernel_info()
            reply = await self._reply_to(msg_id, deadline)
            if reply is not None and await self._iopub_idle_after(msg_id, deadline):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError("Kernel didn't respond in time")

    async def _reply_to(self, msg_id: str, deadline: float) -> dict[str, Any] | None:
        while time.monotonic() < deadline:
            try:
                msg: dict[str, Any] = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    async def _iopub_idle_after(self, msg_id: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                msg: dict[str, Any] = await self.iopub_channel.get_msg(timeout=0.5)
            except (Empty, asyncio.TimeoutError):
                return False  # subscribed too late for this one: ask again
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                return True
        return False
