"""free_port: ports for servers that bind later stay out of the kernel's ephemeral range."""

from __future__ import annotations

import socket

from attune_services.cli.launcher import _ephemeral_range, free_port


def test_free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= port <= high for port in ports), (low, high, ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # free right now
