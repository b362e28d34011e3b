"""The refusal flood meter and the rate-limited refusal log, on a fake clock."""

from __future__ import annotations

import logging

from eda_gateway.refusal_flood import RefusalFlood
from eda_gateway.refusal_log import RefusalLog


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_connection_is_answered_then_slowed_then_closed():
    clock = Clock()
    meter = RefusalFlood(slow_after=3, close_after=5, window=10.0, delay=1.5, clock=clock)
    assert [meter.refused() for _ in range(5)] == [0.0, 0.0, 0.0, 1.5, 1.5]
    assert meter.refused() is None
    assert "over 5 in 10 s" in meter.reason() and "refusal_flood_close_after" in meter.reason()


def test_refusals_spread_over_the_window_are_never_slowed():
    clock = Clock()
    meter = RefusalFlood(slow_after=3, close_after=5, window=10.0, delay=1.5, clock=clock)
    for _ in range(100):
        assert meter.refused() == 0.0
        clock.now += 4.0  # at most 3 in any 10 s


def test_first_refusal_per_user_is_logged_then_one_summary_per_interval(caplog):
    clock = Clock()
    log = logging.getLogger("test.refusals")
    refusals = RefusalLog(log, interval=60.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.refusals"):
        for _ in range(1432):
            refusals.refused("alice", "refused %s", "alice")
            clock.now += 0.01
        refusals.refused("bob", "refused %s", "bob")
        refusals.tick()
        assert len(caplog.records) == 2  # one each, nothing else yet
        clock.now += 60.0
        refusals.tick()
        refusals.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("refused alice (further refusals of alice")
    assert len(lines) == 3 and "alice: 1,432 refusals in the last 74 s" in lines[2]  # bob had only one


def test_access_log_lines_of_429s_are_rate_limited_per_user():
    from types import SimpleNamespace

    from eda_gateway.refusal_log import quiet_refusals

    logged = []
    refusals = RefusalLog(logging.getLogger("test.access"), interval=60.0, clock=Clock())
    log_request = quiet_refusals(logged.append, refusals)

    def handler(status, user):
        return SimpleNamespace(get_status=lambda: status, current_user=SimpleNamespace(username=user),
                               request=SimpleNamespace(remote_ip="10.0.0.1"))

    for _ in range(100):
        log_request(handler(429, "alice"))
    log_request(handler(429, "bob"))
    log_request(handler(200, "alice"))
    assert len(logged) == 3  # alice's first 429, bob's first 429, and the 200
