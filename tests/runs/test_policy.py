"""The cull and cap rules (:class:`runtime.runs.policy.KernelPolicy`) on plain data and a fake
clock: which run kernel goes, and when a start is refused as busy."""

from __future__ import annotations

import pytest

from runtime.runs.policy import KernelPolicy, KernelsBusyError, KernelUse


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def detached(kernel_id: str, since: float, *, locked: bool = False) -> KernelUse:
    """A run kernel whose last page went at `since`."""
    return KernelUse(kernel_id, connections=0, last_used=since, detached_since=since,
                     locked=locked)


def connected(kernel_id: str, last_used: float, pages: int = 1) -> KernelUse:
    """A run kernel with `pages` pages attached."""
    return KernelUse(kernel_id, connections=pages, last_used=last_used, detached_since=None)


def test_a_detached_kernel_is_culled_once_the_timeout_has_passed() -> None:
    clock = FakeClock()
    policy = KernelPolicy(max_kernels=0, cull_idle_timeout=10.0, clock=clock)
    kernels = [detached("a", since=0.0), detached("b", since=4.0)]
    clock.now = 9.5
    assert policy.to_cull(kernels) == []
    clock.now = 10.0
    assert policy.to_cull(kernels) == ["a"]
    clock.now = 14.0
    assert policy.to_cull(kernels) == ["a", "b"]


def test_no_timeout_culls_nothing() -> None:
    clock = FakeClock(1e9)
    policy = KernelPolicy(max_kernels=0, cull_idle_timeout=0.0, clock=clock)
    assert policy.to_cull([detached("a", since=0.0)]) == []


def test_a_connected_kernel_is_never_culled() -> None:
    clock = FakeClock()
    policy = KernelPolicy(max_kernels=2, cull_idle_timeout=10.0, clock=clock)
    kernels = [connected("page", last_used=0.0), detached("idle", since=50.0)]
    clock.now = 1e6
    assert policy.to_cull(kernels) == ["idle"]
    # at the cap, the idle one goes even though the connected one was used longer ago
    assert policy.make_room(kernels, live_count=2) == "idle"
    with pytest.raises(KernelsBusyError):
        policy.make_room([connected("page", last_used=0.0)], live_count=2)


def test_a_kernel_being_bound_or_replayed_is_never_culled() -> None:
    clock = FakeClock(100.0)
    policy = KernelPolicy(max_kernels=1, cull_idle_timeout=10.0, clock=clock)
    replaying = detached("replaying", since=0.0, locked=True)
    assert policy.to_cull([replaying]) == []
    with pytest.raises(KernelsBusyError):
        policy.make_room([replaying], live_count=1)


def test_the_cap_culls_the_least_recently_used_idle_kernel_first() -> None:
    policy = KernelPolicy(max_kernels=4, cull_idle_timeout=600.0, clock=FakeClock(20.0))
    kernels = [
        detached("recent", since=9.0),
        connected("oldest-but-open", last_used=0.0),
        detached("least-recent", since=2.0),
        detached("middle", since=5.0),
    ]
    assert policy.make_room(kernels, live_count=4) == "least-recent"
    assert policy.make_room(kernels[:2], live_count=5) == "recent"


def test_under_the_cap_or_without_one_no_kernel_goes() -> None:
    kernels = [detached("a", since=0.0)]
    capped = KernelPolicy(max_kernels=3, cull_idle_timeout=0.0, clock=FakeClock())
    assert capped.make_room(kernels, live_count=2) is None
    assert capped.has_room(2) and not capped.has_room(3)
    uncapped = KernelPolicy(max_kernels=0, cull_idle_timeout=0.0, clock=FakeClock())
    assert uncapped.make_room(kernels, live_count=1000) is None
    assert uncapped.has_room(1000)


def test_busy_when_every_kernel_has_a_page() -> None:
    policy = KernelPolicy(max_kernels=2, cull_idle_timeout=600.0, clock=FakeClock())
    kernels = [connected("a", last_used=0.0), connected("b", last_used=1.0, pages=3)]
    with pytest.raises(KernelsBusyError) as raised:
        policy.make_room(kernels, live_count=2)
    assert raised.value.retry_after > 0
    assert "all 2 kernels are in use" in str(raised.value)
