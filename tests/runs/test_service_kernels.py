"""The run service's use of its policy and kernel manager, in-process: a fake kernel manager
(:class:`runtime.runs.live.KernelProcesses`), a fake clock, and live records put in place of
started kernels. What a real kernel does is the server tests' (tests/server)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from runtime.runs.listener import KernelListener
from runtime.runs.live import LiveKernel
from runtime.runs.policy import KernelPolicy
from runtime.runs.service import RunService

LOG = logging.getLogger("tests.runs.service")


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProcesses:
    """A kernel manager that has the kernels it is told of, and records shut-downs."""

    def __init__(self) -> None:
        self.kernels: set[str] = set()
        self.shut: list[str] = []

    def __contains__(self, kernel_id: str) -> bool:
        return kernel_id in self.kernels

    async def start_process(self, kernel_name: str, env: dict[str, str]) -> str:
        raise AssertionError("these tests start no kernel")

    def connection_info(self, kernel_id: str) -> Any:
        raise AssertionError("these tests start no kernel")

    def process_id(self, kernel_id: str) -> int | None:
        return None

    async def kernel_alive(self, kernel_id: str) -> bool:
        return kernel_id in self.kernels

    async def shut_down(self, kernel_id: str) -> None:
        self.kernels.discard(kernel_id)
        self.shut.append(kernel_id)

    async def shut_down_all(self) -> None:
        for kernel_id in sorted(self.kernels):
            await self.shut_down(kernel_id)


class FakeListener:
    """What the service asks of a kernel's listener here."""

    runner_events: list[dict[str, Any]] = []

    def stop(self) -> None:
        pass


def service_of(processes: FakeProcesses, clock: FakeClock, **policy: Any) -> RunService:
    manifest = SimpleNamespace(app_id="app", kernel_name="python3")
    return RunService(
        processes, cast(Any, None), cast(Any, None), cast(Any, manifest), Path("app"),
        Path("versions"), policy=KernelPolicy(clock=clock, **policy), pool_size=0,
        show_tracebacks=False, kernel_timeout=1.0, log=LOG,
    )


def bound(service: RunService, processes: FakeProcesses, kernel_id: str, run_id: str,
          used: float) -> LiveKernel:
    """A live kernel of `run_id`, last used at `used`, no page attached."""
    live = LiveKernel(kernel_id, cast(KernelListener, FakeListener()), run_id=run_id,
                      last_used=used, detached_since=used)
    service.kernels.by_kernel[kernel_id] = service.kernels.by_run[run_id] = live
    processes.kernels.add(kernel_id)
    return live


async def test_the_culler_shuts_down_only_kernels_detached_past_the_timeout() -> None:
    processes, clock = FakeProcesses(), FakeClock()
    service = service_of(processes, clock, max_kernels=0, cull_idle_timeout=600.0)
    bound(service, processes, "k-open", "r-open", used=0.0)
    bound(service, processes, "k-gone", "r-gone", used=0.0)
    service.attach("k-open")
    clock.now = 599.0
    assert await service.cull_idle() == 0
    clock.now = 600.0
    assert await service.cull_idle() == 1
    assert processes.shut == ["k-gone"]
    assert service.live("k-gone") is None and service.live("k-open") is not None
    assert service.culled == 1


async def test_a_detached_page_restarts_the_idle_clock() -> None:
    processes, clock = FakeProcesses(), FakeClock()
    service = service_of(processes, clock, max_kernels=0, cull_idle_timeout=10.0)
    live = bound(service, processes, "k", "r", used=0.0)
    service.attach("k")
    service.attach("k")
    clock.now = 50.0
    service.detach("k")
    assert live.connections == 1 and await service.cull_idle() == 0
    service.detach("k")
    assert live.connections == 0 and live.detached_since == 50.0
    clock.now = 59.0
    assert await service.cull_idle() == 0
    clock.now = 60.0
    assert await service.cull_idle() == 1


async def test_a_kernel_the_manager_removed_is_forgotten() -> None:
    processes, clock = FakeProcesses(), FakeClock()
    service = service_of(processes, clock, max_kernels=0, cull_idle_timeout=0.0)
    bound(service, processes, "k", "r", used=0.0)
    service.forget("k")
    assert service.live("k") is None and service.kernels.by_run == {}
    assert service.kernels.count == 0
