"""Packs: loading and validating a pack folder, and checking execution parameters.

A pack is a folder (docs/workflows.md, Packs and workflow files): ``pack.yaml``;
``actions/<name>.yaml`` with their scripts; workflow files named by ``workflow_file`` (relative
to ``actions/``); standalone ``workflows/<name>.workflow.yaml``. :func:`load_pack` turns it into
a :class:`PackBundle` or refuses it as a whole with a :class:`PackError` naming every bad file and
field. Every pack is checked against :class:`PackLimits` (its size, files, paths, the YAML in
them, the names it declares) before anything in it is used; :func:`check_upload` is the first
of those checks, run on the files as a client sent them.
:mod:`attune.packs.parameters` checks the parameters of each execution request.
"""

from attune.packs._concurrency import ConcurrencyKeyError, ConcurrencyPolicy
from attune.packs._errors import PackError, PackProblem
from attune.packs._limits import DEFAULT_LIMITS, PackLimits, check_upload
from attune.packs._loader import bundled_pack_path, load_pack, load_pack_files, read_pack_files
from attune.packs._model import RUNNER_TYPES, SLOT_FREE_RUNTIMES, ActionDefinition, PackBundle, pack_digest
from attune.packs._schema import check_parameter_schema
from attune.packs._workflows import check_workflow
from attune.packs._yaml import YamlLimits, YamlProblem, load_yaml
from attune.packs.parameters import (
    FieldViolation,
    ParameterError,
    coerce_cli_value,
    redact,
    secret_names,
    validate_parameters,
)

__all__ = [
    "DEFAULT_LIMITS",
    "RUNNER_TYPES",
    "SLOT_FREE_RUNTIMES",
    "ActionDefinition",
    "ConcurrencyKeyError",
    "ConcurrencyPolicy",
    "FieldViolation",
    "PackBundle",
    "PackError",
    "PackLimits",
    "PackProblem",
    "ParameterError",
    "YamlLimits",
    "YamlProblem",
    "bundled_pack_path",
    "check_parameter_schema",
    "check_upload",
    "check_workflow",
    "coerce_cli_value",
    "load_pack",
    "load_pack_files",
    "load_yaml",
    "pack_digest",
    "read_pack_files",
    "redact",
    "secret_names",
    "validate_parameters",
]
