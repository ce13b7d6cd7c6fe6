"""The pre-flight check: which host limit the planned clients would run out of, and by how much."""

from __future__ import annotations

import resource

from jabberemu.preflight import (
    CPA_POOL,
    KIB_PER_CLIENT,
    MIB_PER_PROCESS,
    SPARE_FDS,
    HostLimits,
    connect_search_warning,
    host_limits,
    problems,
)

HOST = HostLimits(fds=20_000, ephemeral_ports=28_232, port_range="32768-60999", memory_bytes=24 << 30)


def test_a_demo_sized_run_fits() -> None:
    assert problems(clients=2_000, processes=2, source_addresses=1, limits=HOST) == []


def test_too_many_clients_for_one_process_names_the_shortfall_and_the_cure() -> None:
    (line,) = problems(clients=25_000, processes=1, source_addresses=1, limits=HOST)
    need = 25_000 + CPA_POOL + SPARE_FDS
    assert line == (f"file descriptors: 25,000 clients per process need ~{need:,} open files, the limit is 20,000 "
                    f"(ulimit -Hn): short by {need - 20_000:,}; one process holds ~{20_000 - SPARE_FDS - CPA_POOL:,} "
                    "clients: run 2 processes (--processes) or raise the limit")
    assert problems(clients=25_000, processes=2, source_addresses=1, limits=HOST) == []


def test_one_source_address_runs_out_of_ports_towards_one_node() -> None:
    (line,) = problems(clients=30_000, processes=2, source_addresses=1, limits=HOST)
    assert line.startswith("ephemeral ports: after a failover all 30,000 clients may be on one node, but 1 source "
                           "address(es) open at most 28,232 connections to one node port "
                           "(net.ipv4.ip_local_port_range 32768-60999): short by 1,768; give --source-addresses 2")
    assert problems(clients=30_000, processes=2, source_addresses=2, limits=HOST) == []


def test_memory_counts_clients_and_processes() -> None:
    small = HostLimits(fds=20_000, ephemeral_ports=28_232, port_range="32768-60999", memory_bytes=1 << 29)
    (line,) = problems(clients=20_000, processes=2, source_addresses=1, limits=small)
    need = 20_000 * KIB_PER_CLIENT * 1024 + 2 * MIB_PER_PROCESS * (1 << 20)
    assert line == (f"memory: 20,000 clients in 2 process(es) need ~{need / (1 << 30):.1f} GiB (30 KiB per client, "
                    f"200 MiB per process), 0.5 GiB is available: short by {(need - (1 << 29)) / (1 << 30):.1f} GiB")
    unknown = HostLimits(fds=20_000, ephemeral_ports=28_232, port_range="32768-60999", memory_bytes=None)
    assert problems(clients=20_000, processes=2, source_addresses=1, limits=unknown) == []


def test_this_hosts_limits_are_read() -> None:
    limits = host_limits()
    assert limits.fds == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    low, high = (int(x) for x in limits.port_range.split("-"))
    assert limits.ephemeral_ports == high - low + 1 > 0
    assert limits.memory_bytes is None or limits.memory_bytes > 0


def test_past_half_the_range_from_one_address_is_a_warning_with_the_cure() -> None:
    assert connect_search_warning(14_116, 1, HOST) is None  # half of 28,232: the slow search starts after it
    assert connect_search_warning(28_000, 2, HOST) is None
    line = connect_search_warning(15_000, 1, HOST)
    assert line == ("ephemeral ports: 15,000 connections from one source address towards one node port pass half "
                    "of net.ipv4.ip_local_port_range 32768-60999 (14,116), where each connect() costs ~30 times "
                    "the CPU (Linux walks the ports of one parity first): give --source-addresses 2 addresses of "
                    "this host, or widen the range")
    assert problems(clients=15_000, processes=2, source_addresses=1, limits=HOST) == []  # a warning, no refusal
