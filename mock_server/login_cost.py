"""Login admission of one mock node: a token bucket in front of a bounded queue (pure, caller's clock).

A real IM and Presence node sustains only a fixed login rate; Cisco's "High Availability Login
Profiles" ("Configuration and Administration of IM and Presence Service" 12.5(1)) give it per server
size, and the client re-login limits exist so that a failover wave stays under it. The mock models
that cost with ``--login-rate R`` (sustained logins/s), ``--login-burst B`` (logins that may start
back to back), ``--login-service-ms S`` (time one login occupies once started) and ``--login-queue Q``
(logins that may wait for a token; beyond that the node answers "server busy": SOAP fault
``server-busy``, XMPP SASL ``temporary-auth-failure`` / ``resource-constraint``). Default: unlimited.

The bucket is the generic cell rate algorithm (virtual scheduling): with emission interval ``1/R``
and burst ``B`` the k-th login of a storm starts at ``max(now, tat - (B-1)/R)``, so started logins
are spaced exactly ``1/R`` apart once the burst is spent. The model never sleeps; an asyncio caller
does::

    admission = model.admit(loop.time())
    if admission.kind is AdmissionKind.BUSY:
        raise ServerBusy
    await asyncio.sleep(admission.wait_s + admission.service_s)
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from mock_server.params import ParameterError, login_profile

__all__ = ["Admission", "AdmissionKind", "LoginCostCounters", "LoginCostModel", "LoginCostSettings"]


@dataclass(frozen=True, kw_only=True)
class LoginCostSettings:
    """Login cost of one node.

    Attributes:
        rate_per_s: sustained logins per second; None = unlimited (no bucket, no queue).
        burst: logins that may start at once with a full bucket (>= 1).
        service_ms: time one started login occupies before it answers (>= 0).
        queue_limit: logins that may wait for a token; None = unbounded, 0 = no waiting.

    Raises:
        ParameterError: a value out of range.
    """

    rate_per_s: float | None = None
    burst: int = 1
    service_ms: float = 0.0
    queue_limit: int | None = None

    def __post_init__(self) -> None:
        if self.rate_per_s is not None and not (isinstance(self.rate_per_s, (int, float)) and self.rate_per_s > 0):
            raise ParameterError(f"login rate must be > 0 logins/s, not {self.rate_per_s!r}", name="login_rate",
                                 value=self.rate_per_s)
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ParameterError(f"login burst must be an int >= 1, not {self.burst!r}", name="login_burst",
                                 value=self.burst)
        if not isinstance(self.service_ms, (int, float)) or not self.service_ms >= 0:
            raise ParameterError(f"login service time must be >= 0 ms, not {self.service_ms!r}",
                                 name="login_service_ms", value=self.service_ms)
        if self.queue_limit is not None and (isinstance(self.queue_limit, bool) or not isinstance(self.queue_limit, int)
                                             or self.queue_limit < 0):
            raise ParameterError(f"login queue must be an int >= 0, not {self.queue_limit!r}", name="login_queue",
                                 value=self.queue_limit)

    @classmethod
    def from_profile(cls, name: str, *, burst: int = 1, service_ms: float = 0.0,
                     queue_limit: int | None = None) -> LoginCostSettings:
        """Settings at the rate of a Cisco HA login profile (``--login-profile``, see params.LOGIN_PROFILES).

        Raises:
            ParameterError: unknown profile name.
        """
        return cls(rate_per_s=login_profile(name).users_per_s, burst=burst, service_ms=service_ms,
                   queue_limit=queue_limit)


class AdmissionKind(enum.Enum):
    """What happens to one login attempt."""

    STARTED = "started"  # a token was there: starts now
    QUEUED = "queued"  # waits for its token, starts at ``start_s``
    BUSY = "busy"  # queue full: answer "server busy" now


@dataclass(frozen=True, kw_only=True)
class Admission:
    """The fate of one login attempt, on the caller's clock (seconds)."""

    kind: AdmissionKind
    now_s: float
    start_s: float
    done_s: float

    @property
    def wait_s(self) -> float:
        """Seconds to wait before the login starts (0 unless queued)."""
        return self.start_s - self.now_s

    @property
    def service_s(self) -> float:
        """Seconds the login occupies once started."""
        return self.done_s - self.start_s


@dataclass(frozen=True, kw_only=True)
class LoginCostCounters:
    """Counters since start; ``attempts == started + queued + busy`` always."""

    attempts: int
    started: int
    queued: int
    busy: int
    queue_depth: int

    @property
    def accepted(self) -> int:
        """Logins let through, at once or after waiting."""
        return self.started + self.queued


class LoginCostModel:
    """Admits login attempts for one node.

    Args:
        settings: rate, burst, service time, queue limit.
    """

    def __init__(self, settings: LoginCostSettings | None = None) -> None:
        self.settings = settings or LoginCostSettings()
        self._tat_s: float | None = None  # theoretical arrival time of the next conforming login
        self._waiting: deque[float] = deque()  # start times of queued logins not yet started
        self._attempts = self._started = self._queued = self._busy = 0

    def _expire(self, now_s: float) -> None:
        while self._waiting and self._waiting[0] <= now_s:
            self._waiting.popleft()

    def queue_depth(self, now_s: float) -> int:
        """Logins queued and not started by ``now_s``."""
        self._expire(now_s)
        return len(self._waiting)

    def admit(self, now_s: float) -> Admission:
        """Decide one login attempt arriving at ``now_s`` (monotonic seconds, never decreasing).

        Returns:
            STARTED (start now), QUEUED (start at ``start_s``, later) or BUSY (rejected now).
        """
        s = self.settings
        self._attempts += 1
        service_s = s.service_ms / 1000.0
        if s.rate_per_s is None:
            self._started += 1
            return Admission(kind=AdmissionKind.STARTED, now_s=now_s, start_s=now_s, done_s=now_s + service_s)
        self._expire(now_s)
        interval_s = 1.0 / s.rate_per_s
        tat = now_s if self._tat_s is None else max(self._tat_s, now_s)
        start_s = max(now_s, tat - (s.burst - 1) * interval_s)
        if start_s > now_s:
            if s.queue_limit is not None and len(self._waiting) >= s.queue_limit:
                self._busy += 1
                return Admission(kind=AdmissionKind.BUSY, now_s=now_s, start_s=now_s, done_s=now_s)
            self._waiting.append(start_s)
            self._queued += 1
            kind = AdmissionKind.QUEUED
        else:
            self._started += 1
            kind = AdmissionKind.STARTED
        self._tat_s = tat + interval_s
        return Admission(kind=kind, now_s=now_s, start_s=start_s, done_s=start_s + service_s)

    def counters(self, now_s: float) -> LoginCostCounters:
        """Counters now (queue depth as of ``now_s``)."""
        return LoginCostCounters(attempts=self._attempts, started=self._started, queued=self._queued,
                                 busy=self._busy, queue_depth=self.queue_depth(now_s))
