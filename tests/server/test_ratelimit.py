"""The failed sign-in limiter, on a clock the test moves."""

from __future__ import annotations

from runtime.runs.ratelimit import FailureLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_waits_after_limit_failures_until_the_oldest_ages_out() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60.0, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") == 0.0
        limiter.record_failure("1.2.3.4")
        clock.now += 10
    assert limiter.retry_after("1.2.3.4") == 30.0  # the first failure ages out at 1060
    assert limiter.retry_after("5.6.7.8") == 0.0  # other clients are not slowed down
    clock.now += 30
    assert limiter.retry_after("1.2.3.4") == 0.0


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=2, window=5.0, clock=clock)
    limiter.record_failure("a")
    clock.now += 6
    limiter.record_failure("a")
    assert limiter.retry_after("a") == 0.0
    limiter.record_failure("a")
    assert limiter.retry_after("a") > 0.0


def test_a_bucket_allows_a_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=5.0, clock=clock)
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.25  # 2.5 tokens back
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100
    assert sum(bucket.take() for _ in range(20)) == 5  # never more than the burst


def test_a_zero_rate_bucket_never_limits() -> None:
    bucket = TokenBucket(rate=0.0, burst=0.0, clock=Clock())
    assert all(bucket.take() for _ in range(1000))


def test_the_failure_that_reaches_the_limit_is_reported_once() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60.0, clock=clock)
    assert [limiter.record_failure("a") for _ in range(5)] == [False, False, True, False, False]
    clock.now += 61
    assert [limiter.record_failure("a") for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_per_key_and_in_keys() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60.0, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.record_failure("guesser")
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.01
    assert len(limiter._failures) == 100
    assert all(len(times) <= 3 for times in limiter._failures.values())
    assert limiter.retry_after("guesser") > 0  # the busiest key is still limited
    assert limiter.retry_after("10.0.0.0") == 0.0  # the oldest keys were forgotten
