"""The policy table covers every RPC the contract defines, and nothing else."""

from __future__ import annotations

import importlib
from pathlib import Path

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import attune
from attune.grpcutil.reflection import V1_METHOD, v1_file_descriptor
from attune.security.policy import POLICY, SERVICE_IDENTITIES, Role, rule_for


def _contract_methods() -> set[str]:
    """Every method of every service in the generated code (libs/attune/**/v1/*_pb2.py)."""
    methods: set[str] = set()
    root = Path(attune.__file__).parent
    for path in sorted(root.rglob("*_pb2.py")):
        module = importlib.import_module("attune." + ".".join(path.relative_to(root).with_suffix("").parts))
        for service in module.DESCRIPTOR.services_by_name.values():
            methods |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return methods


def _plumbing_methods() -> set[str]:
    return {
        f"/{service.full_name}/{m.name}"
        for file in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR, v1_file_descriptor())
        for service in file.services_by_name.values()
        for m in service.methods
    }


def test_every_rpc_of_the_contract_has_a_rule() -> None:
    missing = sorted(_contract_methods() - set(POLICY))
    assert not missing, f"RPCs without an authorization rule in attune/security/policy.py: {missing}"


def test_every_rule_names_an_rpc_that_exists() -> None:
    stale = sorted(set(POLICY) - _contract_methods() - _plumbing_methods())
    assert not stale, f"rules for RPCs the contract does not define: {stale}"


def test_the_contract_was_found() -> None:
    # Guards the two tests above against a walk that finds nothing.
    assert "/attune.internal.worker.v1.WorkerService/Connect" in _contract_methods()
    assert "/attune.auth.v1.TokenService/CreateToken" in _contract_methods()


def test_an_unknown_method_is_denied_to_everyone() -> None:
    rule = rule_for("/attune.registry.v1.RegistryService/Unknown")
    assert not rule.open and rule.role is None and not rule.identities


def test_internal_rpcs_take_no_token_and_public_ones_no_certificate() -> None:
    for method, rule in POLICY.items():
        if ".internal." in method:
            assert rule.role is None and rule.identities, method
            assert rule.identities <= SERVICE_IDENTITIES, method
        elif method.startswith("/attune."):
            assert rule.role is not None and not rule.identities, method


def test_health_is_open_and_reflection_needs_a_viewer_or_a_service() -> None:
    assert all(rule_for(m).open for m in _plumbing_methods() if "Health" in m)
    reflection = rule_for("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert reflection.role is Role.VIEWER and reflection.identities == SERVICE_IDENTITIES
    assert rule_for(V1_METHOD) == reflection


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)


def test_a_denial_names_the_certificate_required() -> None:
    rule = rule_for("/attune.internal.worker.v1.WorkerService/Connect")
    assert rule.describe() == "requires the worker's certificate (spiffe://attune/worker)"
