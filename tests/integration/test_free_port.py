"""Ports for the stacks' child servers come from below the kernel's ephemeral range (tests/integration/harness.py)."""

from __future__ import annotations

import socket

from tests.integration.harness import _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_free():
    low = _ephemeral_low()
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    if low - 9 * 2_000 >= 10_000:
        assert all(p < low for p in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_taken_port_is_skipped():
    first = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first + 1))
        holder.listen()
        assert free_port() != first + 1
