"""A brake on password guessing that never locks the owner out: failed log-ins are counted
per (user name, client address) and per client address, in a moving window. Past the limit
that name from that address, or that address at all, waits until its oldest failure leaves
the window. Nothing counts a name across addresses: whoever fails at a name elsewhere, its
owner still logs in from theirs. Both the web page ``/login`` and ``POST /api/login`` ask the
brake before they check a password, so refused guesses cost no scrypt either.

The counts are the ``limits`` library's moving windows in the server's memory: a restart
forgets them, and several server processes count apart. The address limit is four times the
(name, address) one, for users behind one NAT; a success clears its (name, address) count.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

# Namespaces of the two counts in the limiter's keys.
_NAME_AT_ADDRESS = "login-name"
_ADDRESS = "login-address"


class LoginThrottled(Exception):
    """Too many failed log-ins: ``retry_after`` seconds until the next try is taken."""

    def __init__(self, what: str, retry_after: int) -> None:
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"too many failed log-ins {what}: try again in {minutes} "
                         f"minute{'s' if minutes > 1 else ''}")


class LoginThrottle:
    """``check`` before a password is checked, then ``failed`` or ``succeeded``.

    ``max_failures`` per (name, address) and four times as many per address, within
    ``window`` seconds (whole seconds, at least one)."""

    def __init__(self, max_failures: int, window: float) -> None:
        seconds = max(1, round(window))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._name = RateLimitItemPerSecond(max_failures, seconds, namespace=_NAME_AT_ADDRESS)
        self._address = RateLimitItemPerSecond(max_failures * 4, seconds, namespace=_ADDRESS)

    def _counts(self, user: str, address: str) -> list[tuple[RateLimitItemPerSecond,
                                                             tuple[str, ...], str]]:
        return [(self._name, (user.lower(), address), "for this user name from this address"),
                (self._address, (address,), "from this address")]

    def check(self, user: str, address: str) -> None:
        """Raise :class:`LoginThrottled` if the name from this address, or the address, has
        failed too often within the window."""
        for item, keys, what in self._counts(user, address):
            if not self._limiter.test(item, *keys):
                reset = self._limiter.get_window_stats(item, *keys).reset_time
                raise LoginThrottled(what, max(1, math.ceil(reset - time.time())))

    def failed(self, user: str, address: str) -> None:
        for item, keys, _ in self._counts(user, address):
            self._limiter.hit(item, *keys)

    def succeeded(self, user: str, address: str) -> None:
        self._limiter.clear(self._name, user.lower(), address)
