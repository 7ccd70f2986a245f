"""Packs: loading and validating a pack folder, and checking execution parameters.

A pack is a folder (docs/workflows.md, Packs and workflow files): ``pack.yaml``;
``actions/<name>.yaml`` with their scripts; workflow files named by ``workflow_file`` (relative
to ``actions/``); standalone ``workflows/<name>.workflow.yaml``. :func:`load_pack` turns it into
a :class:`PackBundle` or refuses it as a whole with a :class:`PackError` naming every bad file and
field.
:mod:`attune.packs.parameters` checks the parameters of each execution request.
"""

from attune.packs._errors import PackError, PackProblem
from attune.packs._loader import bundled_pack_path, load_pack, load_pack_files, read_pack_files
from attune.packs._model import RUNNER_TYPES, SLOT_FREE_RUNTIMES, ActionDefinition, PackBundle, pack_digest
from attune.packs._schema import check_parameter_schema
from attune.packs.parameters import (
    FieldViolation,
    ParameterError,
    coerce_cli_value,
    redact,
    secret_names,
    validate_parameters,
)

__all__ = [
    "RUNNER_TYPES",
    "SLOT_FREE_RUNTIMES",
    "ActionDefinition",
    "FieldViolation",
    "PackBundle",
    "PackError",
    "PackProblem",
    "ParameterError",
    "bundled_pack_path",
    "check_parameter_schema",
    "coerce_cli_value",
    "load_pack",
    "load_pack_files",
    "pack_digest",
    "read_pack_files",
    "redact",
    "secret_names",
    "validate_parameters",
]
