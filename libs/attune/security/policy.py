"""Who may call what: one table from a gRPC method's full name to the credential it requires.

Internal RPCs (docs/architecture.md, Authorization) accept only the service identities their
contract names, proven by the caller's certificate (`spiffe://attune/<identity>`). Public RPCs
accept a client bearer token whose role is at least the one listed; a service certificate is not a
client credential. Health needs nothing; reflection needs a viewer token or any service identity.
A method missing from the table is refused: adding an RPC without a rule here fails
`tests/security/test_authz_policy.py`, not silently opens a door.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from attune.grpcutil.reflection import V1_METHOD


class Role(StrEnum):
    """A client token's role; each one may do everything the roles before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in viewer < operator < admin."""
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """True when this role is at least `required`."""
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

#: Identities of the services (the `cli` certificate is a client's, not a service's).
SCHEDULER = "scheduler"
COORDINATOR = "coordinator"
COMPLETION = "completion"
WORKER = "worker"
SERVICE_IDENTITIES = frozenset({SCHEDULER, COORDINATOR, COMPLETION, WORKER})


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What a call of one method must present (any one of the options suffices)."""

    #: Service identities whose certificate is accepted.
    identities: frozenset[str] = frozenset()
    #: The least client-token role accepted; None: no token is accepted.
    role: Role | None = None
    #: Nothing is required (health checks).
    open: bool = False

    def describe(self) -> str:
        """What the rule requires, for a PERMISSION_DENIED message."""
        if self.identities and self.role is None:
            names = sorted(self.identities)
            certificates = " or ".join(f"the {n}'s certificate (spiffe://attune/{n})" for n in names)
            return f"requires {certificates}"
        if self.role is not None:
            return f"requires a token with role {self.role} or higher"
        return "is not allowed to anyone"


def _internal(*identities: str) -> Rule:
    return Rule(identities=frozenset(identities))


def _public(role: Role) -> Rule:
    return Rule(role=role)


def _methods(service: str, rules: Mapping[str, Rule]) -> dict[str, Rule]:
    return {f"/{service}/{method}": rule for method, rule in rules.items()}


def _all_methods(descriptor_services: Iterable[object], rule: Rule) -> dict[str, Rule]:
    table: dict[str, Rule] = {}
    for service in descriptor_services:
        for method in service.methods:  # type: ignore[attr-defined]
            table[f"/{service.full_name}/{method.name}"] = rule  # type: ignore[attr-defined]
    return table


VIEWER = _public(Role.VIEWER)
OPERATOR = _public(Role.OPERATOR)
ADMIN = _public(Role.ADMIN)

#: Every method served anywhere, by full name.
POLICY: Mapping[str, Rule] = {
    # --- public: called by clients with a bearer token, all served by the scheduler
    **_methods(
        "attune.registry.v1.RegistryService",
        {
            "RegisterPack": ADMIN,
            "CreateAction": ADMIN,
            "UpdateAction": ADMIN,
            "DeleteAction": ADMIN,
            "GetAction": VIEWER,
            "ListActions": VIEWER,
            "ListPacks": VIEWER,
            "GetPack": VIEWER,
            "DeletePack": ADMIN,
            "ValidateWorkflow": VIEWER,
        },
    ),
    **_methods(
        "attune.execution.v1.ExecutionService",
        {
            "RequestExecution": OPERATOR,
            "RunExecution": OPERATOR,
            "RunExecutions": OPERATOR,
            "CancelExecution": OPERATOR,
            "RespondToExecution": OPERATOR,
            "RerunExecution": OPERATOR,
            "PauseExecution": OPERATOR,
            "ResumeExecution": OPERATOR,
            "GetExecution": VIEWER,
            "ListExecutions": VIEWER,
            "WatchExecution": VIEWER,
            "GetExecutionResult": VIEWER,
            "WatchExecutionLogs": VIEWER,
            "PurgeExecutions": ADMIN,
        },
    ),
    **_methods(
        "attune.workflow.v1.WorkflowService",
        {"CancelWorkflow": OPERATOR, "GetWorkflowRun": VIEWER, "ListWorkflowRuns": VIEWER},
    ),
    **_methods(
        "attune.auth.v1.TokenService",
        {"CreateToken": ADMIN, "ListTokens": ADMIN, "RevokeToken": ADMIN, "WhoAmI": VIEWER},
    ),
    # --- internal: called by services with their certificate
    **_methods("attune.internal.worker.v1.WorkerService", {"Connect": _internal(WORKER)}),
    **_methods("attune.internal.packs.v1.PackFilesService", {"GetPackFiles": _internal(WORKER)}),
    **_methods(
        "attune.internal.completion.v1.CompletionService",
        {
            # The scheduler submits its give-ups (schedule timeout, lost worker) on the same stream.
            "SubmitResults": _internal(WORKER, SCHEDULER),
            "SubmitResult": _internal(COORDINATOR, SCHEDULER),
            "WatchCompleted": _internal(SCHEDULER),
        },
    ),
    **_methods(
        "attune.internal.execution.v1.ChildExecutionService",
        {
            "RequestChildExecutions": _internal(COORDINATOR),
            "StreamChildExecutions": _internal(COORDINATOR),
            "CancelChildExecution": _internal(COORDINATOR),
        },
    ),
    **_methods(
        "attune.internal.workflow.v1.CoordinatorService",
        {
            "StartWorkflows": _internal(SCHEDULER),
            "ReportOutcomes": _internal(COMPLETION),
            "GetWorkflowRun": _internal(SCHEDULER),
            "ListWorkflowRuns": _internal(SCHEDULER),
            "CancelWorkflow": _internal(SCHEDULER),
            "PauseWorkflow": _internal(SCHEDULER),
            "ResumeWorkflow": _internal(SCHEDULER),
        },
    ),
    # --- plumbing every server carries
    **_all_methods(health_pb2.DESCRIPTOR.services_by_name.values(), Rule(open=True)),
    **_all_methods(
        reflection_pb2.DESCRIPTOR.services_by_name.values(), Rule(identities=SERVICE_IDENTITIES, role=Role.VIEWER)
    ),
    V1_METHOD: Rule(identities=SERVICE_IDENTITIES, role=Role.VIEWER),  # reflection v1: the same service
}

#: What a method missing from the table gets: nothing is allowed.
DENY = Rule()


def rule_for(method: str) -> Rule:
    """The rule of a full method name ("/package.Service/Method"); unknown methods are denied."""
    return POLICY.get(method, DENY)
