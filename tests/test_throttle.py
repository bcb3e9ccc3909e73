"""The brake on password guessing (levrt.server.throttle), on a clock of the test's own."""

import pytest

from levrt.server.throttle import LoginThrottle, LoginThrottled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def fail(throttle, times, user="alice", address="10.0.0.1"):
    for _ in range(times):
        throttle.check(user, address)
        throttle.failed(user, address)


def test_a_user_name_waits_after_its_failures(clock):
    throttle = LoginThrottle(3, 60, clock=clock)
    fail(throttle, 3)
    with pytest.raises(LoginThrottled, match="this user name: try again in 1 minute") as caught:
        throttle.check("ALICE", "10.0.0.2")  # any spelling, any address
    assert caught.value.retry_after == 60
    throttle.check("bob", "10.0.0.1")  # another name from the same address may still try
    clock.now += 30
    with pytest.raises(LoginThrottled) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 30
    clock.now += 30  # the oldest failure has left the window
    throttle.check("alice", "10.0.0.1")


def test_an_address_waits_after_four_times_as_many(clock):
    throttle = LoginThrottle(2, 120, clock=clock)
    for index in range(8):
        fail(throttle, 1, user=f"user{index}")
    with pytest.raises(LoginThrottled, match="this address: try again in 2 minutes"):
        throttle.check("someone", "10.0.0.1")
    throttle.check("someone", "10.0.0.9")


def test_a_success_clears_the_user_names_count(clock):
    throttle = LoginThrottle(2, 60, clock=clock)
    fail(throttle, 1)
    throttle.succeeded("Alice")
    fail(throttle, 1)
    throttle.check("alice", "10.0.0.1")  # one failure since the success: below the limit


def test_expired_counts_are_swept(clock, monkeypatch):
    monkeypatch.setattr("levrt.server.throttle._SWEEP_AT", 10)
    throttle = LoginThrottle(5, 60, clock=clock)
    for index in range(20):
        fail(throttle, 1, user=f"guess{index}", address=f"10.0.1.{index}")
    clock.now += 61
    fail(throttle, 1, user="late")
    assert len(throttle._failures) == 2  # the late name and its address
