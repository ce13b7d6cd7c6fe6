"""Re-login timing and target order: pure functions with an injected random source.

Source: "Configuration and Administration of IM and Presence Service" 12.5(1), "Configure
Redundancy and High Availability": after a failover a client waits a random time between the Client
Re-Login Lower Limit and Upper Limit before logging in again. Cisco does not publish the
distribution; uniform is our choice (DOMAIN.md), consistent with Cisco's statement that the upper
limit is about the time for all clients to reach the backup.
"""

from __future__ import annotations

import hashlib
import random

from jabberemu.config import NodeAddress, ReloginLimits

__all__ = ["ClientRandom", "client_random", "draw_wait_s", "order_targets", "place_redirect", "rng_for", "seed_for"]


def draw_wait_s(rng: random.Random | ClientRandom, limits: ReloginLimits) -> float:
    """Draw one re-login wait uniformly from ``[limits.lower_s, limits.upper_s]``.

    Args:
        rng: the client's own random source (see :func:`rng_for`).
        limits: the limits cached at the client's last login.

    Returns:
        The wait in seconds; exactly ``lower_s`` when the window is empty.
    """
    if limits.upper_s == limits.lower_s:
        return limits.lower_s
    wait_s = rng.uniform(limits.lower_s, limits.upper_s)
    # random.uniform may round to just past b; keep the promise of the closed interval.
    return min(max(wait_s, limits.lower_s), limits.upper_s)


def seed_for(run_seed: int, user_id: str) -> int:
    """A 64-bit seed for one client, stable across processes and Python versions.

    Uses SHA-256 (never ``hash()``, which is salted per process).

    Args:
        run_seed: the run's seed.
        user_id: the client's user id.

    Returns:
        An int in ``[0, 2**64)``.
    """
    digest = hashlib.sha256(f"{int(run_seed)}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def rng_for(run_seed: int, user_id: str) -> random.Random:
    """A fresh ``random.Random`` seeded with :func:`seed_for` (one per client)."""
    return random.Random(seed_for(run_seed, user_id))


class ClientRandom:
    """One client's random source, without the 2.5 KiB state of a ``random.Random`` (our choice).

    A client draws a handful of numbers in a run (its activity seed, one wait per re-login round),
    but keeps its source for the whole run: 15,000 Mersenne Twister states are 37 MiB. Here the
    ``n``-th draw uses a fresh ``random.Random`` seeded with ``(seed, n)`` (~5 us), so the draws are
    a function of the seed and the draw's rank only, as with one ``Random(seed)``: the same in every
    process.

    Args:
        seed: the client's 64-bit seed (:func:`seed_for`).
    """

    __slots__ = ("seed", "draws")

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.draws = 0

    def _next(self) -> random.Random:
        rng = random.Random((self.seed << 24) + self.draws)
        self.draws += 1
        return rng

    def uniform(self, a: float, b: float) -> float:
        """``random.uniform`` of the next draw."""
        return self._next().uniform(a, b)

    def random(self) -> float:
        """``random.random`` of the next draw."""
        return self._next().random()

    def getrandbits(self, k: int) -> int:
        """``random.getrandbits`` of the next draw."""
        return self._next().getrandbits(k)


def client_random(run_seed: int, user_id: str) -> ClientRandom:
    """The client's :class:`ClientRandom`, seeded with :func:`seed_for`."""
    return ClientRandom(seed_for(run_seed, user_id))


def order_targets(
    primary: NodeAddress, secondary: NodeAddress | None, preferred: str | None
) -> tuple[NodeAddress, NodeAddress]:
    """First and second choice node for a series of attempts (the ``_P`` and ``_S`` states).

    Args:
        primary: the primary node (the home node, or the one the CPA reports as primary).
        secondary: its peer, or None for a one-node pair.
        preferred: node name a ``see-other-host`` stream error named (RFC 6120 §4.9.3.19), or None.

    Returns:
        ``(first, second)``: the primary first unless ``preferred`` names the secondary; a one-node
        pair returns its node twice.
    """
    if secondary is None:
        return primary, primary
    if preferred is not None and preferred == secondary.name:
        return secondary, primary
    return primary, secondary


def place_redirect(series: tuple[NodeAddress, NodeAddress], target: NodeAddress,
                   *, first: bool) -> tuple[NodeAddress, NodeAddress]:
    """Put a ``see-other-host`` target into a series of XMPP attempts (RFC 6120 §4.9.3.19).

    The target takes the place of the attempt it replaces: the first choice (an ``_P`` state) or
    the second (an ``_S`` state); the other choice stays. When a first-choice target is the series'
    second choice, the two swap, so that node comes first and the other is still tried after it.

    Args:
        series: ``(first, second)`` as :func:`order_targets` gave it.
        target: where the redirect points (a pair node or a node built on the fly).
        first: True for the first choice, False for the second.

    Returns:
        The new ``(first, second)``.
    """
    head, tail = series
    if not first:
        return head, target
    return target, (head if tail.name == target.name else tail)
