"""Compiled workflow definitions: parsed and compiled once, cached in memory, stored by digest.

A workflow handed over by the scheduler carries its YAML. Parsing and compiling is done once per
distinct document (the cache is keyed by a hash of the text, the source and the timeout override);
the compiled form is stored once in `workflow_definitions` under its content digest and shared by
every run. A restarted coordinator loads compiled definitions back by digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from attune.engine import CompiledWorkflow, EngineError, compile_workflow, parse_workflow
from attune.storage import Database
from attune_services.coordinator.store import load_definition


class DefinitionError(Exception):
    """A workflow definition cannot be used; the message says why (and where)."""


@dataclass(frozen=True)
class Compiled:
    """A compiled workflow and its JSON form (for storing once)."""

    workflow: CompiledWorkflow
    json: str


class DefinitionCache:
    """In-memory compiled definitions, by document hash and by content digest."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_text: dict[str, Compiled] = {}
        self._by_digest: dict[str, CompiledWorkflow] = {}
        self._stored: set[str] = set()

    def compile(self, yaml_text: str, *, source: str, timeout: float = 0.0) -> Compiled:
        """Parses and compiles a document (cached). `timeout` > 0 overrides the workflow's own.

        Raises DefinitionError naming the source and every problem in it.
        """
        key = hashlib.sha256(f"{source}\0{timeout!r}\0{yaml_text}".encode()).hexdigest()
        hit = self._by_text.get(key)
        if hit is not None:
            return hit
        try:
            spec = parse_workflow(yaml_text, source=source or "workflow")
            if timeout > 0:
                spec = dataclasses.replace(spec, timeout=timeout)
            workflow = compile_workflow(spec)
        except EngineError as err:
            raise DefinitionError(f"workflow definition {source or '(unnamed)'} is invalid: {err}") from err
        compiled = Compiled(workflow, json.dumps(workflow.to_dict(), separators=(",", ":")))
        self._by_text[key] = compiled
        self._by_digest[workflow.digest] = workflow
        return compiled

    def needs_storing(self, digest: str) -> bool:
        """True until the definition is known to be stored (then the write is skipped)."""
        return digest not in self._stored

    def stored(self, digest: str) -> None:
        """Notes that a definition is durably stored."""
        self._stored.add(digest)

    async def by_digest(self, digest: str) -> CompiledWorkflow:
        """The compiled definition stored under `digest` (from memory, else from the database)."""
        hit = self._by_digest.get(digest)
        if hit is not None:
            return hit
        async with self._db.read() as conn:
            data = await load_definition(conn, digest)
        if data is None:
            raise DefinitionError(f"compiled workflow definition {digest} is not stored")
        try:
            workflow = CompiledWorkflow.from_dict(data)
        except EngineError as err:
            raise DefinitionError(f"compiled workflow definition {digest} cannot be loaded: {err}") from err
        self._by_digest[digest] = workflow
        self._stored.add(digest)
        return workflow
