"""The brake on password guessing (levrt.server.throttle): counts per (user name, address)
and per address, in moving windows of real time (a second or two here)."""

import time

import pytest

from levrt.server.throttle import LoginThrottle, LoginThrottled


def fail(throttle, times, user="alice", address="10.0.0.1"):
    for _ in range(times):
        throttle.check(user, address)
        throttle.failed(user, address)


def test_a_name_waits_at_the_address_it_failed_from_only():
    throttle = LoginThrottle(3, 60)
    fail(throttle, 3)
    with pytest.raises(LoginThrottled, match="for this user name from this address: try "
                       "again in 1 minute") as caught:
        throttle.check("ALICE", "10.0.0.1")  # any spelling of the name
    assert 59 <= caught.value.retry_after <= 60
    # The owner, from another address, is not locked out by someone else's guesses.
    throttle.check("alice", "10.0.0.2")
    # Another name from the guessing address may still try (below the address's limit).
    throttle.check("bob", "10.0.0.1")


def test_the_oldest_failure_leaving_the_window_lets_one_more_try():
    throttle = LoginThrottle(2, 1)
    fail(throttle, 2)
    with pytest.raises(LoginThrottled) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 1
    time.sleep(1.1)
    fail(throttle, 2)  # a moving window: both failures have left it


def test_an_address_waits_after_four_times_as_many():
    throttle = LoginThrottle(2, 120)
    for index in range(8):
        fail(throttle, 1, user=f"user{index}")
    with pytest.raises(LoginThrottled, match="from this address: try again in 2 minutes"):
        throttle.check("someone", "10.0.0.1")
    throttle.check("someone", "10.0.0.9")


def test_a_success_clears_the_count_of_its_name_and_address():
    throttle = LoginThrottle(2, 60)
    fail(throttle, 1)
    fail(throttle, 1, address="10.0.0.2")
    throttle.succeeded("Alice", "10.0.0.1")
    fail(throttle, 1)
    throttle.check("alice", "10.0.0.1")  # one failure since the success: below the limit
    fail(throttle, 1, address="10.0.0.2")
    with pytest.raises(LoginThrottled):  # the other address's count was not cleared
        throttle.check("alice", "10.0.0.2")
