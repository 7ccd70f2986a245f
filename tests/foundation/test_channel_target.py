"""`channel_target`: a comma-separated list of addresses becomes one gRPC target over all of them
(failover between replicas; the channels themselves are tested in tests/integration/test_replicas_e2e.py)."""

from __future__ import annotations

import pytest

from attune.grpcutil.channel import channel_target


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1:50051", None)),
        ("dns:///scheduler.attune:50051", ("dns:///scheduler.attune:50051", None)),
        ("10.0.0.5:50051,10.0.0.6:50051", ("ipv4:10.0.0.5:50051,10.0.0.6:50051", "10.0.0.5:50051")),
        (" 10.0.0.5:1 , 10.0.0.6:2 ", ("ipv4:10.0.0.5:1,10.0.0.6:2", "10.0.0.5:1")),
        ("[::1]:1,[::1]:2", ("ipv6:[::1]:1,[::1]:2", "[::1]:1")),
        # gRPC's own list syntax: kept, with an authority a certificate can name.
        ("ipv4:10.0.0.5:1,10.0.0.6:2", ("ipv4:10.0.0.5:1,10.0.0.6:2", "10.0.0.5:1")),
        # A host name is resolved now; TLS checks the name as written.
        ("localhost:1,127.0.0.2:2", ("ipv4:127.0.0.1:1,127.0.0.2:2", "localhost:1")),
    ],
)
def test_a_list_becomes_one_target_over_every_address(address: str, expected: tuple[str, str | None]) -> None:
    assert channel_target(address) == expected


@pytest.mark.parametrize(
    ("address", "named"),
    [("10.0.0.5:50051,10.0.0.6", "'10.0.0.6'"), ("10.0.0.5:1,no-such-host.invalid:2", "no-such-host.invalid")],
)
def test_a_bad_entry_is_named(address: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        channel_target(address)
