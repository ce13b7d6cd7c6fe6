"""Before a run: which of the host's limits the planned clients would run out of, and by how much.

A run that outgrows a limit fails in its middle (``EMFILE`` at the 1,000th login, ``EADDRNOTAVAIL``
when one source address has no ephemeral port left towards a node, the OOM killer); this check says
so before anything starts, in the user's terms. The limits it knows:

- **file descriptors per process**: one socket per connected client, plus the CPA connections in
  use while clients log in (at most :data:`CPA_POOL` per process) and :data:`SPARE_FDS` for the rest;
  against the hard ``RLIMIT_NOFILE`` (:func:`raise_fd_limit` lifts the soft limit to it at start);
- **ephemeral ports**: every client holds one XMPP connection; after a failover every client may be
  on one node, one destination ``ip:port``, and one source address opens at most one connection per
  port of ``net.ipv4.ip_local_port_range`` to it: ``clients <= ports x source addresses``
  (``--source-addresses``);
  Long before that, past half the range, each ``connect()`` costs ~30 times the CPU (Linux walks the
  ports of one parity first: :mod:`jabberemu.xmpp.source`): :func:`connect_search_warning` says so, as a
  warning (the run works, slower);
- **memory**: :data:`KIB_PER_CLIENT` per connected client plus :data:`MIB_PER_PROCESS` per Locust
  process, against the memory available now.

Our choice: the figures per client are this tool's own, measured (BENCHMARKS.md); a limit passed by
less than they can tell is still reported. Pure but for :func:`host_limits` and :func:`raise_fd_limit`.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CPA_POOL", "KIB_PER_CLIENT", "MIB_PER_PROCESS", "SPARE_FDS", "HostLimits", "connect_search_warning",
           "host_limits", "problems", "raise_fd_limit"]

KIB_PER_CLIENT = 30.0
"""RSS per connected idle client (KiB): the issue's bound, above the 23 KiB measured at 4,000 clients."""
MIB_PER_PROCESS = 200.0
"""RSS of a Locust process with jabberemu loaded, before its clients (MiB)."""
CPA_POOL = 100
"""CPA (HTTP) connections one process may hold while its clients log in."""
SPARE_FDS = 64
"""Descriptors for everything else: logs, run data, the event loop, the Locust channels."""

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@dataclass(frozen=True, kw_only=True)
class HostLimits:
    """What this host allows.

    Attributes:
        fds: the hard limit of open files per process (``ulimit -Hn``).
        ephemeral_ports: ports in ``net.ipv4.ip_local_port_range``.
        port_range: that range as written, for messages (``32768-60999``).
        memory_bytes: memory available now (None: unknown).
    """

    fds: int
    ephemeral_ports: int
    port_range: str
    memory_bytes: int | None


def host_limits() -> HostLimits:
    """Read this host's limits (Linux; defaults of a stock kernel where a file cannot be read)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        low, high = (int(x) for x in PORT_RANGE_FILE.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    try:
        import psutil

        memory: int | None = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - unknown memory is not a reason to refuse a run
        memory = None
    fds = hard if hard != resource.RLIM_INFINITY else 1 << 20
    return HostLimits(fds=fds, ephemeral_ports=high - low + 1, port_range=f"{low}-{high}", memory_bytes=memory)


def raise_fd_limit() -> int:
    """Lift this process's soft ``RLIMIT_NOFILE`` to its hard limit (idempotent); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def problems(*, clients: int, processes: int, source_addresses: int, limits: HostLimits) -> list[str]:
    """The limits ``clients`` spread over ``processes`` Locust processes would run out of, one line
    each with the shortfall ([] when none).

    Args:
        clients: emulated clients of the whole run (``-u``).
        processes: Locust processes that hold them (1, or the workers of ``--processes``).
        source_addresses: local addresses the XMPP connections come from (``--source-addresses``; 1 when
            none is given).
        limits: this host's (:func:`host_limits`).
    """
    out: list[str] = []
    processes = max(1, processes)
    per_process = math.ceil(clients / processes)
    fds = per_process + min(CPA_POOL, per_process) + SPARE_FDS
    if fds > limits.fds:
        fit = max(0, limits.fds - SPARE_FDS - min(CPA_POOL, per_process))
        out.append(f"file descriptors: {per_process:,} clients per process need ~{fds:,} open files, the limit "
                   f"is {limits.fds:,} (ulimit -Hn): short by {fds - limits.fds:,}; one process holds ~{fit:,} "
                   f"clients: run {math.ceil(clients / max(1, fit))} processes (--processes) or raise the limit")
    ports = limits.ephemeral_ports * max(1, source_addresses)
    if clients > ports:
        need = math.ceil(clients / limits.ephemeral_ports)
        out.append(f"ephemeral ports: after a failover all {clients:,} clients may be on one node, but "
                   f"{max(1, source_addresses)} source address(es) open at most {ports:,} connections to one node "
                   f"port (net.ipv4.ip_local_port_range {limits.port_range}): short by {clients - ports:,}; give "
                   f"--source-addresses {need} addresses (e.g. 127.0.0.1,127.0.0.2 on loopback)")
    if limits.memory_bytes is not None:
        need_b = clients * KIB_PER_CLIENT * 1024 + processes * MIB_PER_PROCESS * (1 << 20)
        if need_b > limits.memory_bytes:
            out.append(f"memory: {clients:,} clients in {processes} process(es) need ~{need_b / (1 << 30):.1f} GiB "
                       f"({KIB_PER_CLIENT:g} KiB per client, {MIB_PER_PROCESS:g} MiB per process), "
                       f"{limits.memory_bytes / (1 << 30):.1f} GiB is available: short by "
                       f"{(need_b - limits.memory_bytes) / (1 << 30):.1f} GiB")
    return out


def connect_search_warning(clients: int, source_addresses: int, limits: HostLimits) -> str | None:
    """Past half of the ephemeral range from one address towards one node port, a warning with the cure.

    Args:
        clients: clients of the whole run (after a failover they may all be on one node).
        source_addresses: local addresses their XMPP connections come from (at least 1).
        limits: this host's (:func:`host_limits`).

    Returns:
        One line, or None when each address stays within half the range (the swarm spreads a pair on
        loopback itself; a real pair needs addresses of this host).
    """
    per_address = math.ceil(clients / max(1, source_addresses))
    half = limits.ephemeral_ports // 2
    if per_address <= half:
        return None
    need = math.ceil(clients / half)
    return (f"ephemeral ports: {per_address:,} connections from one source address towards one node port pass half "
            f"of net.ipv4.ip_local_port_range {limits.port_range} ({half:,}), where each connect() costs ~30 times "
            f"the CPU (Linux walks the ports of one parity first): give --source-addresses {need} addresses of this "
            f"host, or widen the range")
