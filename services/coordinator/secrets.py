"""A workflow's secret values kept out of the coordinator's tables (docs/architecture.md, Secrets).

A workflow knows its secret values: those of its secret parameters, which reach the coordinator
sealed (the scheduler seals them when it stores the execution). The engine works on plain values
in memory; what is stored goes through `WorkflowSecrets.stored`:

- the `params` entry keeps each secret parameter sealed on its own (so a reload knows which values
  are secret), and any other state entry whose JSON contains a secret value is sealed as a whole;
- a task run's request (the child's input) that contains one is sealed as a whole;
- the workflow's own result and error are masked (`********`): they are shown to clients and
  submitted to the completion service, so they are not sealed but never hold the value.

A workflow without secret parameters has no `WorkflowSecrets` and pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from attune.security.masking import SecretValues
from attune.security.sealing import Sealer, is_sealed, open_parameters, require
from attune_services.coordinator.rows import StepWrite, dump_json

#: The engine's state entry holding the workflow's parameters.
PARAMS_ENTRY = "params"


@dataclass(frozen=True)
class WorkflowSecrets:
    """The secret values of one workflow and the sealer that hides them at rest."""

    sealer: Sealer
    values: SecretValues
    #: The `params` entry as stored: secret parameters sealed, each on its own.
    sealed_params: dict[str, Any]

    @classmethod
    def of_parameters(
        cls, sealer: Sealer | None, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], WorkflowSecrets | None]:
        """Opens the sealed parameters a workflow starts with: the plain parameters, and its
        secrets (None when no parameter is sealed). SecretKeyError when they cannot be opened."""
        sealed = [name for name, value in params.items() if is_sealed(value)]
        if not sealed:
            return dict(params), None
        plain = open_parameters(sealer, params)
        ring = require(sealer, "opening a workflow's secret parameters")
        return plain, cls(ring, SecretValues.of_parameters(plain, sealed), dict(params))

    @classmethod
    def of_entries(
        cls, sealer: Sealer | None, entries: Mapping[str, Any]
    ) -> tuple[dict[str, Any], WorkflowSecrets | None]:
        """Opens the entries of a stored workflow: the plain entries, and its secrets (None when
        its parameters hold none)."""
        params = entries.get(PARAMS_ENTRY)
        if not isinstance(params, dict):
            return dict(entries), None
        plain_params, secrets = cls.of_parameters(sealer, params)
        if secrets is None:
            return dict(entries), None
        opened = {key: secrets.sealer.open(value) for key, value in entries.items()}
        opened[PARAMS_ENTRY] = plain_params
        return opened, secrets

    def stored(self, write: StepWrite) -> StepWrite:
        """The copy of `write` to store: entries and task-run requests holding a secret sealed.
        Masks the finish in `write` itself, as the carrier submits that same result."""
        if write.finish is not None:
            f = write.finish
            write.finish = replace(
                f, result=self.values.mask(f.result), error=None if f.error is None else self.values.mask_text(f.error)
            )
        entries = {key: self._entry(key, value) for key, value in write.entries.items()}
        runs = [
            replace(run, request=self.sealer.seal(run.request)) if self._holds_secret(run.request) else run
            for run in write.new_runs
        ]
        return replace(write, entries=entries, new_runs=runs)

    def _entry(self, key: str, value: Any) -> Any:
        if value is None:
            return None  # a deletion
        if key == PARAMS_ENTRY:
            return self.sealed_params
        return self.sealer.seal(value) if self._holds_secret(value) else value

    def _holds_secret(self, value: Any) -> bool:
        return self.values.found_in(dump_json(value))


def open_request(sealer: Sealer | None, request: Any) -> Any:
    """A stored task-run request, opened when it was sealed (what the carrier sends again)."""
    if not is_sealed(request):
        return request
    return require(sealer, "opening a stored child request").unseal(request)
