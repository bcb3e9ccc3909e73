"""A brake on password guessing: failed log-ins are counted per user name and per client
address, and past a limit within a window that name (or address) may not try again until
its oldest failure leaves the window. Both the web page ``/login`` and ``POST /api/login``
ask it before they check a password, so refused guesses cost no scrypt either.

The counts live in the server's memory: a restart forgets them, and several server
processes count apart. The address limit is higher than the name's, for users behind one
NAT; a success clears its user name's count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

# Keys of the two counts, apart so that a user called like an address shares nothing.
_USER = "user:"
_ADDRESS = "address:"
# Counts kept before the expired ones are swept out: guesses at many names leave many.
_SWEEP_AT = 10_000


class LoginThrottled(Exception):
    """Too many failed log-ins: ``retry_after`` seconds until the next try is taken."""

    def __init__(self, what: str, retry_after: int) -> None:
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"too many failed log-ins for this {what}: try again in {minutes} "
                         f"minute{'s' if minutes > 1 else ''}")


class LoginThrottle:
    """``check`` before a password is checked, then ``failed`` or ``succeeded``."""

    def __init__(self, max_failures: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _limits(self, user: str, address: str) -> list[tuple[str, str, int]]:
        return [(_USER + user.lower(), "user name", self.max_failures),
                (_ADDRESS + address, "address", self.max_failures * 4)]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def check(self, user: str, address: str) -> None:
        """Raise :class:`LoginThrottled` if the user name or the address has failed too
        often within the window."""
        now = self._clock()
        with self._lock:
            for key, what, limit in self._limits(user, address):
                times = self._recent(key, now)
                if len(times) >= limit:
                    raise LoginThrottled(what, math.ceil(times[0] + self.window - now))

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _SWEEP_AT:
                for key in list(self._failures):
                    self._recent(key, now)
            for key, _, limit in self._limits(user, address):
                times = self._recent(key, now)
                times.append(now)
                while len(times) > limit:
                    times.popleft()
                self._failures[key] = times

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(_USER + user.lower(), None)
