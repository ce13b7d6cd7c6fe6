"""Inputs and per-client outputs of the re-login wave model (docs/login-model.md).

Inputs: :class:`ServerModel` (one node's login admission, spec §1), :class:`WaveSpec` (who comes
back, when, and the client's SOAP timeout, spec §2) and :class:`Waits` (the drawn re-login waits of
every client in every replica, so that the fast model and the reference simulator consume the very
same draws). Output of both simulators: :class:`ClientOutcomes`, the fate of every login attempt of
every client, from which ``summary`` derives series and bands.

Conventions: times in seconds from the HA event (t = 0); arrays are ``(replicas, clients)`` or
``(round, replicas, clients)`` with round index 0 = round 1, 1 = round 2; NaN = no such event.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from jabberemu.throttle.errors import ModelInputError

__all__ = [
    "DEFAULT_REPLICAS",
    "DEFAULT_SOAP_TIMEOUT_S",
    "AttemptOutcome",
    "ClientFate",
    "ClientOutcomes",
    "FloatArray",
    "IntArray",
    "NodeAttempts",
    "ServerModel",
    "WaveKind",
    "WaveSpec",
    "Waits",
    "draw_uniforms",
    "draw_waits",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int8]

#: The client's SOAP timeout when none is given (s); our choice, Cisco publishes none (spec §2).
DEFAULT_SOAP_TIMEOUT_S = 30.0
#: Replicas (independent waves) per model run when none is given.
DEFAULT_REPLICAS = 200


class WaveKind(enum.Enum):
    """Which HA event caused the wave (spec §2: where the first attempt of a round goes)."""

    #: Home node failed: the first attempt goes to it and fails at once at no cost; the backup serves.
    FAILOVER = "failover"
    #: Home node is back: it serves; a failed attempt there is followed by one on the backup (the
    #: *other* node), which is charged a login and answers ``not-served-here``.
    FALLBACK = "fallback"


class AttemptOutcome(enum.IntEnum):
    """What one CPA login attempt at one node came to (codes stored as int8)."""

    NONE = 0  #: no attempt
    ANSWERED = 1  #: served: success at the serving node, ``not-served-here`` at the other node
    REFUSED_BUSY = 2  #: ``server-busy`` at arrival: the queue held ``queue_limit`` logins
    TIMED_OUT_WAITING = 3  #: SOAP timeout while waiting: left the queue, consumed nothing
    TIMED_OUT_IN_SERVICE = 4  #: SOAP timeout while in service: the node finished it, answer dropped


class ClientFate(enum.IntEnum):
    """How a client's re-login ended (codes stored as int8)."""

    UNKNOWN = 0  #: not decided (never left in a finished result)
    RECOVERED_ROUND_1 = 1
    RECOVERED_ROUND_2 = 2
    GAVE_UP = 3  #: both rounds failed: ``relogin-failed``


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerModel:
    """Login admission of one node (spec §1); every parameter at its default costs nothing.

    Args:
        rate_per_s: logins started per second, sustained (token bucket); None = unlimited.
        burst: tokens the bucket holds (>= 1); it starts full.
        workers: logins in service at once (>= 1); None = unlimited.
        service_s: seconds one started login holds its worker before the node answers (>= 0).
        queue_limit: logins that may wait (>= 0); beyond it ``server-busy``; None = unbounded.

    Raises:
        ModelInputError: a value out of range or of the wrong type.
    """

    rate_per_s: float | None = None
    burst: int = 1
    workers: int | None = None
    service_s: float = 0.0
    queue_limit: int | None = None

    def __post_init__(self) -> None:
        r = self.rate_per_s
        if r is not None and not (_is_real(r) and math.isfinite(r) and r > 0):
            raise ModelInputError("rate_per_s", r, "must be a finite rate > 0 logins/s, or None")
        if not (_is_int(self.burst) and self.burst >= 1):
            raise ModelInputError("burst", self.burst, "must be an int >= 1")
        if self.workers is not None and not (_is_int(self.workers) and self.workers >= 1):
            raise ModelInputError("workers", self.workers, "must be an int >= 1, or None")
        if not (_is_real(self.service_s) and math.isfinite(self.service_s) and self.service_s >= 0):
            raise ModelInputError("service_s", self.service_s, "must be finite and >= 0 s")
        q = self.queue_limit
        if q is not None and not (_is_int(q) and q >= 0):
            raise ModelInputError("queue_limit", q, "must be an int >= 0, or None")

    @property
    def unlimited(self) -> bool:
        """True when nothing ever waits: no rate and no worker limit (service time may be > 0)."""
        return self.rate_per_s is None and self.workers is None

    @property
    def capacity_per_s(self) -> float | None:
        """Sustained logins/s: min(rate, workers / service time); None when unbounded."""
        caps = []
        if self.rate_per_s is not None:
            caps.append(float(self.rate_per_s))
        if self.workers is not None and self.service_s > 0:
            caps.append(self.workers / self.service_s)
        return min(caps) if caps else None


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveSpec:
    """One re-login wave: ``clients`` lose their session at the HA event (t = 0).

    Args:
        clients: clients that re-login (those of the failed / recovered node), >= 1.
        kind: failover or fallback (where the first attempt of a round goes).
        lower_s, upper_s: Client Re-Login Lower/Upper Limit cached by the clients (s); each round
            waits uniform in [lower_s, upper_s]. ``lower_s`` must be > 0 (the fast model relies on
            every re-entry being at least ``lower_s`` after the failure that caused it);
            ``upper_s >= lower_s`` (equal: every client comes back at the same instant).
        soap_timeout_s: the client's SOAP timeout (s), > 0.

    Raises:
        ModelInputError: a value out of range.
    """

    clients: int
    kind: WaveKind
    lower_s: float
    upper_s: float
    soap_timeout_s: float = DEFAULT_SOAP_TIMEOUT_S

    def __post_init__(self) -> None:
        if not (_is_int(self.clients) and self.clients >= 1):
            raise ModelInputError("clients", self.clients, "must be an int >= 1")
        if not isinstance(self.kind, WaveKind):
            raise ModelInputError("kind", self.kind, "must be a WaveKind")
        if not (_is_real(self.lower_s) and math.isfinite(self.lower_s) and self.lower_s > 0):
            raise ModelInputError("lower_s", self.lower_s, "must be finite and > 0 s")
        if not (_is_real(self.upper_s) and math.isfinite(self.upper_s) and self.upper_s >= self.lower_s):
            raise ModelInputError("upper_s", self.upper_s, f"must be finite and >= lower_s {self.lower_s:g} s")
        t = self.soap_timeout_s
        if not (_is_real(t) and math.isfinite(t) and t > 0):
            raise ModelInputError("soap_timeout_s", t, "must be finite and > 0 s")

    @property
    def window_s(self) -> float:
        """upper_s - lower_s."""
        return float(self.upper_s - self.lower_s)


def _frozen(array: NDArray[np.generic]) -> None:
    array.flags.writeable = False


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Waits:
    """The drawn re-login waits (s) of every client: ``(replicas, clients)`` each.

    ``round2_s[r, c]`` is used only if client c of replica r reaches round 2. Arrays are copied
    and made read-only.

    Args:
        round1_s: wait from the HA event to round 1, finite, >= 0.
        round2_s: wait from the failure of round 1 to round 2, finite, > 0.

    Raises:
        ModelInputError: shapes differ or are not 2-D with >= 1 replica and client, or bad values.
    """

    round1_s: FloatArray
    round2_s: FloatArray

    def __post_init__(self) -> None:
        for name in ("round1_s", "round2_s"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            if array.ndim != 2 or 0 in array.shape:
                raise ModelInputError(name, array.shape, "must be a non-empty 2-D array (replicas, clients)")
            if not np.all(np.isfinite(array)) or np.any(array < 0):
                raise ModelInputError(name, array.shape, "waits must be finite and >= 0 s")
            _frozen(array)
            object.__setattr__(self, name, array)
        if self.round1_s.shape != self.round2_s.shape:
            raise ModelInputError("round2_s", self.round2_s.shape, f"shape differs from round1_s {self.round1_s.shape}")
        if np.any(self.round2_s <= 0):
            raise ModelInputError("round2_s", self.round2_s.shape, "round-2 waits must be > 0 s")

    @property
    def replicas(self) -> int:
        """Number of replicas (rows)."""
        return int(self.round1_s.shape[0])

    @property
    def clients(self) -> int:
        """Number of clients (columns)."""
        return int(self.round1_s.shape[1])

    @classmethod
    def from_uniforms(cls, round1_u: FloatArray, round2_u: FloatArray, *, lower_s: float,
                      upper_s: float) -> Waits:
        """Waits ``lower_s + u * (upper_s - lower_s)`` from uniforms in [0, 1] (common random numbers).

        Args:
            round1_u, round2_u: uniforms, ``(replicas, clients)`` each.
            lower_s, upper_s: the re-login limits (s).

        Returns:
            The waits.

        Raises:
            ModelInputError: bad shapes or values.
        """
        window = float(upper_s) - float(lower_s)
        return cls(round1_s=lower_s + np.asarray(round1_u, dtype=np.float64) * window,
                   round2_s=lower_s + np.asarray(round2_u, dtype=np.float64) * window)


def draw_uniforms(replicas: int, clients: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Draw the uniforms behind a wave: round 1 sorted along each replica, round 2 unsorted.

    Clients are exchangeable, so client c of a replica is the c-th to come back in round 1: the
    round-1 uniforms are the order statistics of ``clients`` uniforms, drawn directly (normalised
    cumulative sums of exponentials, O(n)) instead of drawn and sorted.

    Args:
        replicas: rows, >= 1.
        clients: columns, >= 1.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same arrays.

    Returns:
        ``(round1_u, round2_u)``, each ``(replicas, clients)`` in [0, 1].

    Raises:
        ModelInputError: replicas or clients < 1.
    """
    if not (_is_int(replicas) and replicas >= 1):
        raise ModelInputError("replicas", replicas, "must be an int >= 1")
    if not (_is_int(clients) and clients >= 1):
        raise ModelInputError("clients", clients, "must be an int >= 1")
    rng = np.random.default_rng(seed)
    spacings = np.cumsum(rng.standard_exponential((replicas, clients + 1)), axis=1)
    round1 = spacings[:, :clients] / spacings[:, clients:]
    round2 = rng.random((replicas, clients))
    return round1, round2


def draw_waits(wave: WaveSpec, *, replicas: int = DEFAULT_REPLICAS, seed: int = 0) -> Waits:
    """Draw every client's waits of ``replicas`` independent waves (see :func:`draw_uniforms`).

    Args:
        wave: clients and limits.
        replicas: independent waves, >= 1.
        seed: the random seed.

    Returns:
        The waits; round 1 sorted along each replica.

    Raises:
        ModelInputError: replicas < 1.
    """
    u1, u2 = draw_uniforms(replicas, wave.clients, seed)
    return Waits.from_uniforms(u1, u2, lower_s=wave.lower_s, upper_s=wave.upper_s)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class NodeAttempts:
    """Every login attempt at one node: arrays ``(2, replicas, clients)``, index 0 = round 1.

    Attributes:
        arrival_s: when the attempt reached the node's admission (NaN: no attempt).
        start_s: when it started service (NaN: never started).
        outcome: :class:`AttemptOutcome` codes (int8).
        queue_peak: the most logins that waited at once at the node, per replica ``(R,)``.

    Raises:
        ModelInputError: shapes differ or are not ``(2, R, N)`` / ``(R,)``.
    """

    arrival_s: FloatArray
    start_s: FloatArray
    outcome: IntArray
    queue_peak: NDArray[np.int64]

    def __post_init__(self) -> None:
        shape = self.arrival_s.shape
        if len(shape) != 3 or shape[0] != 2:
            raise ModelInputError("arrival_s", shape, "must be (2, replicas, clients)")
        for name in ("start_s", "outcome"):
            if getattr(self, name).shape != shape:
                raise ModelInputError(name, getattr(self, name).shape, f"shape differs from arrival_s {shape}")
        if self.queue_peak.shape != shape[1:2]:
            raise ModelInputError("queue_peak", self.queue_peak.shape, f"must be ({shape[1]},)")
        for array in (self.arrival_s, self.start_s, self.outcome, self.queue_peak):
            _frozen(array)

    def answer_s(self, server: ServerModel) -> FloatArray:
        """When each started login ended service (answered or dropped): start + service time; NaN else."""
        return self.start_s + float(server.service_s)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class ClientOutcomes:
    """Per-client result of a wave simulation (fast model or reference simulator).

    Attributes:
        wave: the wave simulated.
        serving_model: admission of the serving node (the backup in a failover wave, home in a
            fallback wave).
        other_model: admission of the other node (fallback only; None in a failover wave).
        waits: the waits consumed.
        serving: attempts at the serving node.
        other: attempts at the other node (fallback only; None in a failover wave).
        recovery_s: HA event to XMPPCONNECTED (= end of the successful CPA login), ``(R, N)``; NaN
            for a client that gave up.
        fate: :class:`ClientFate` codes, ``(R, N)``.

    Raises:
        ModelInputError: shapes do not match the waits, or ``other`` given for the wrong kind.
    """

    wave: WaveSpec
    serving_model: ServerModel
    other_model: ServerModel | None
    waits: Waits
    serving: NodeAttempts
    other: NodeAttempts | None
    recovery_s: FloatArray
    fate: IntArray

    def __post_init__(self) -> None:
        rn = self.waits.round1_s.shape
        if self.serving.arrival_s.shape[1:] != rn:
            raise ModelInputError("serving", self.serving.arrival_s.shape, f"does not match waits {rn}")
        if (self.other is None) != (self.wave.kind is WaveKind.FAILOVER):
            raise ModelInputError("other", self.other, "attempts at the other node exist in a fallback wave only")
        if self.other is not None and self.other.arrival_s.shape[1:] != rn:
            raise ModelInputError("other", self.other.arrival_s.shape, f"does not match waits {rn}")
        for name in ("recovery_s", "fate"):
            if getattr(self, name).shape != rn:
                raise ModelInputError(name, getattr(self, name).shape, f"does not match waits {rn}")
        _frozen(self.recovery_s)
        _frozen(self.fate)

    @property
    def replicas(self) -> int:
        """Number of replicas."""
        return self.waits.replicas

    @property
    def clients(self) -> int:
        """Number of clients."""
        return self.waits.clients
