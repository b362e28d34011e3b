"""GuessThrottle on a fake clock: free failures, doubling waits, quiet forgets, bounded keys."""

from eda_gateway.guessing import GuessThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_free_failures_then_doubling_waits_up_to_the_cap():
    clock = Clock()
    throttle = GuessThrottle(clock, free_failures=3, base_delay=1, max_delay=8)
    for _ in range(3):
        throttle.failed("a")
        assert throttle.retry_after("a") == 0
    waits = []
    for _ in range(6):
        throttle.failed("a")
        waits.append(throttle.retry_after("a"))
        clock.now += waits[-1]  # the guesser waits exactly as told
    assert waits == [1, 2, 4, 8, 8, 8]
    assert throttle.retry_after("b") == 0  # other addresses are untouched


def test_only_quiet_time_forgets():
    clock = Clock()
    throttle = GuessThrottle(clock, free_failures=1, base_delay=1, max_delay=10)
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.retry_after("a") == 1
    clock.now += 1 + 10 + 0.1  # the wait ran out, then max_delay of quiet
    assert throttle.failed("a") == 1  # a fresh start: counted from one again


def test_memory_is_bounded_by_max_keys():
    throttle = GuessThrottle(Clock(), max_keys=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._records) == 100
