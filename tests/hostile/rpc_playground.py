"""Where fuzzed RPCs may play on the shared cluster: the packs they run and change, the values
that make their requests plausible, and the fence that keeps mutating calls off what other tests
use (`Playground.outside`).

The fence: every ref, pack, name and request_id a mutating call carries starts with "fuzz";
executions are requested only of the `fuzz_rpc` pack (a no-op action with a parameter of each
type, and a workflow of it), which no other mutating call may name; actions are created, updated
and deleted in the `fuzz_made` pack; packs registered are "fuzz…" and never `fuzz_rpc`; tokens
made and revoked are "fuzz…". Nothing the fuzzing may run starts a process on the worker.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.protobuf.message import Message
from hypothesis import strategies as st

from attune.packs import DEFAULT_LIMITS, RUNNER_TYPES, YamlProblem, load_yaml
from attune.packs.parameters import PARAMETER_TYPES
from attune.registry.v1 import registry_pb2
from tests.hostile.rpc_requests import (
    Hints,
    PublicMethod,
    Strategy,
    as_struct,
    hostile_bytes,
    hostile_text,
    json_objects,
    json_values,
    message_strategy,
    mutated,
)

RUN_PACK = "fuzz_rpc"  # executions are requested of its actions only; nothing may change it
MADE_PACK = "fuzz_made"  # CreateAction, UpdateAction and DeleteAction play here
RUN_PACK_FILES = {
    "pack.yaml": b"ref: fuzz_rpc\nversion: '1'\n",
    "actions/sink.yaml": textwrap.dedent("""\
        ref: fuzz_rpc.sink
        runner_type: noop
        parameters:
          text: {type: string}
          count: {type: integer, minimum: -5, maximum: 1000000}
          ratio: {type: number}
          flag: {type: boolean}
          items: {type: array}
          config: {type: object}
          mode: {type: string, enum: [fast, slow]}
          token: {type: string, secret: true}
        """).encode(),
    "workflows/flow.workflow.yaml": textwrap.dedent("""\
        ref: fuzz_rpc.flow
        version: 1
        parameters:
          text: {type: string, default: ""}
        tasks:
          - name: pass_on
            action: fuzz_rpc.sink
            input:
              text: "{{ parameters.text }}"
        """).encode(),
}
MADE_PACK_FILES = {"pack.yaml": b"ref: fuzz_made\nversion: '1'\n"}
# What fuzz_rpc.sink accepts, by parameter.
SINK_VALUES: dict[str, Strategy] = {
    "text": st.text(max_size=20),
    "count": st.integers(-5, 1_000_000),
    "ratio": st.floats(-1e6, 1e6),
    "flag": st.booleans(),
    "items": st.lists(st.integers(0, 9), max_size=3),
    "config": st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3),
    "mode": st.sampled_from(["fast", "slow"]),
    "token": st.text(max_size=10),
}
# Fields naming what a mutating call creates, changes or removes: always "fuzz…" (or empty).
_IDENTIFYING = frozenset({"ref", "pack", "name", "action_ref", "request_id"})
_PACK_PATHS = (
    *("pack.yaml", "actions/a.yaml", "actions/a.sh", "workflows/w.workflow.yaml", "workflows/w.yaml"),
    *("actions/sub/b.yaml", "../../x", "/abs", "a//b", "a\\b", "", ".", "actions/../pack.yaml", "x\x00y"),
)
_PLAIN = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@dataclass
class Playground:
    """What the fuzzing registered and learnt on one cluster, and the executions it started."""

    execution_ids: tuple[str, ...]  # ended executions of fuzz_rpc (a flow run and a sink run)
    made_action_id: str  # fuzz_made.fuzz_target, which the fuzzing may update and delete
    run_action_ids: frozenset[str]  # fuzz_rpc's actions: no mutating call may name them
    page_tokens: tuple[str, ...]  # real tokens of ListExecutions and ListWorkflowRuns
    started: list[str] = field(default_factory=list)  # executions the fuzzing created
    _strategies: dict[str, st.SearchStrategy[Message]] = field(default_factory=dict)

    def requests(self, method: PublicMethod) -> st.SearchStrategy[Message]:
        """Requests of `method` with hostile values (built once per method)."""
        strategy = self._strategies.get(method.path)
        if strategy is None:
            # The message's DESCRIPTOR is upb's, which types-protobuf types apart from Descriptor.
            descriptor: Any = method.request.DESCRIPTOR
            strategy = self._strategies[method.path] = message_strategy(descriptor, self.hints(method))
        return strategy

    def request_bytes(self, method: PublicMethod) -> st.SearchStrategy[bytes]:
        """Random bytes, and encodings of requests mutated or with random bytes around them."""
        encoded = self.requests(method).map(lambda m: m.SerializeToString())
        return st.one_of(
            st.binary(max_size=200),
            mutated(encoded),
            st.builds(
                lambda head, body, tail: head + body + tail, st.binary(max_size=8), encoded, st.binary(max_size=8)
            ),
        )

    def hints(self, method: PublicMethod) -> Hints:
        """Plausible values (names and ids that exist, parameters the sink takes, a valid pack),
        and hostile ones fenced in for a mutating method."""
        ids = st.sampled_from([*self.execution_ids, self.made_action_id])
        tokens = st.sampled_from(self.page_tokens) if self.page_tokens else st.just("")
        parameter_names = st.one_of(st.sampled_from(sorted(SINK_VALUES)), hostile_text(12))
        plausible: dict[str, Strategy] = {
            "id": ids,
            "execution_id": ids,
            "parent_id": st.one_of(st.just(""), ids),
            "page_token": st.one_of(st.just(""), tokens),
            "attune.execution.v1.RequestExecutionRequest.parameters": _spoilt(
                st.fixed_dictionaries({}, optional=SINK_VALUES), parameter_names
            ).map(as_struct),
            "attune.registry.v1.RegisterPackRequest.files": _plausible_pack(),
            "attune.registry.v1.Action.id": st.just(""),
            "attune.registry.v1.Action.runner_type": st.just("noop"),
            "attune.registry.v1.Action.entry_point": st.just(""),
            "attune.registry.v1.Action.parameters": _parameter_schemas().map(as_struct),
            "label": st.text(max_size=10),
            "description": st.text(max_size=10),
            "tags": st.lists(_PLAIN, max_size=3),
        }
        hostile: dict[str, Strategy] = {
            "page_token": st.one_of(tokens.map(lambda t: t[:-1]), tokens.map(lambda t: t + "A"), hostile_text()),
            "attune.execution.v1.RequestExecutionRequest.parameters": json_objects(parameter_names).map(as_struct),
            "attune.registry.v1.RegisterPackRequest.files": _pack_files(),
        }
        if not method.mutating:
            known = ["core.echo", "core", f"{RUN_PACK}.sink", RUN_PACK, f"{MADE_PACK}.fuzz_target", MADE_PACK, "admin"]
            plausible |= {name: st.sampled_from(known) for name in _IDENTIFYING}
            return Hints(hostile=hostile, plausible=plausible)
        plausible |= {
            "request_id": st.one_of(st.sampled_from(["", "fuzz-1", "fuzz-2"]), _prefixed("fuzz-", _PLAIN)),
            "name": st.sampled_from(["fuzz_target", "fuzz_a", "fuzz_b"]),
            "ref": st.sampled_from(["", f"{MADE_PACK}.fuzz_target", f"{MADE_PACK}.fuzz_a"]),
            "pack": st.just(MADE_PACK),
            "action_ref": st.sampled_from([f"{RUN_PACK}.sink", f"{RUN_PACK}.flow"]),
        }
        hostile |= {
            "request_id": _prefixed("fuzz-"),
            "name": _prefixed("fuzz"),
            "ref": _prefixed(f"{MADE_PACK}."),
            "pack": _prefixed("fuzz"),
            "action_ref": _prefixed(f"{RUN_PACK}."),
        }
        return Hints(hostile=hostile, plausible=plausible)

    def outside(self, method: PublicMethod, request: Message) -> str | None:
        """Why a request could touch what other tests use (or the run pack), or None."""
        if not method.mutating:
            return None
        for name, value in _strings_of(request):
            if name in _IDENTIFYING and value and not value.startswith("fuzz"):
                return f"{name} {value!r} is not a fuzz name"
            if name == "action_ref" and value and not value.startswith(f"{RUN_PACK}."):
                return f"executions are requested of {RUN_PACK} only, not {value!r}"
            if name != "action_ref" and (value.startswith(RUN_PACK) or value in self.run_action_ids):
                return f"{name} {value!r} names the run pack"
        if isinstance(request, registry_pb2.RegisterPackRequest):
            for file in request.files:
                pack = _pack_ref_of(file) if file.path == "pack.yaml" else None
                if pack is not None and (not pack.startswith("fuzz") or pack.startswith(RUN_PACK)):
                    return f"pack.yaml registers {pack!r}"
        return None


def _prefixed(prefix: str, text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    return (text if text is not None else hostile_text()).map(lambda t: prefix + t)


def _spoilt(documents: Strategy, keys: st.SearchStrategy[str]) -> Strategy:
    """Mappings from `documents`, some with a key added or replaced by any JSON value."""
    extra = st.dictionaries(keys, json_values(huge=False), max_size=1)
    return st.builds(lambda document, more: {**document, **more}, documents, extra)


def _strings_of(message: Message) -> list[tuple[str, str]]:
    """(field name, value) of every string field in `message` and the messages in it, Structs aside."""
    found: list[tuple[str, str]] = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None:
            if descriptor.message_type.full_name.startswith("google.protobuf."):
                continue
            for item in value if descriptor.is_repeated else [value]:
                found += _strings_of(item)
        elif isinstance(value, str):
            found.append((descriptor.name, value))
        elif descriptor.is_repeated:
            found += [(descriptor.name, item) for item in value if isinstance(item, str)]
    return found


def _pack_ref_of(file: registry_pb2.PackFile) -> str | None:
    """The ref a pack.yaml would register, read as the registry reads it (None: it would not)."""
    try:
        document = load_yaml(file.content, DEFAULT_LIMITS.yaml)
    except YamlProblem:
        return None
    ref = document.get("ref") if isinstance(document, dict) else None
    return ref if isinstance(ref, str) else None


# -- packs ---------------------------------------------------------------------------------------


def _parameter_schemas() -> st.SearchStrategy[dict[str, Any]]:
    """Parameter schemas as a pack or CreateAction declares them."""
    spec = st.fixed_dictionaries(
        {"type": st.sampled_from(PARAMETER_TYPES)},
        optional={"required": st.booleans(), "secret": st.booleans(), "description": st.text(max_size=10)},
    )
    return st.dictionaries(st.sampled_from(["a", "b", "count"]), spec, max_size=3)


def _files(documents: dict[str, Strategy]) -> st.SearchStrategy[list[registry_pb2.PackFile]]:
    paths = sorted(documents)
    encoded = [documents[p].map(lambda d: yaml.safe_dump(d).encode()) for p in paths]
    return st.tuples(*encoded).map(
        lambda contents: [registry_pb2.PackFile(path=p, content=c) for p, c in zip(paths, contents, strict=True)]
    )


def _plausible_pack() -> st.SearchStrategy[list[registry_pb2.PackFile]]:
    """The files of a valid fuzz_pack (a no-op action and a workflow of it), a document perhaps
    given a key of any value."""
    keys = st.one_of(st.sampled_from(["ref", "version", "parameters", "tasks", "runner_type"]), _PLAIN)
    pack = st.fixed_dictionaries({"ref": st.just("fuzz_pack"), "version": st.just("1.0")})
    action = st.fixed_dictionaries(
        {"ref": st.just("fuzz_pack.a"), "runner_type": st.just("noop"), "parameters": _parameter_schemas()}
    )
    workflow = st.fixed_dictionaries(
        {
            "ref": st.just("fuzz_pack.w"),
            "version": st.just(1),
            "tasks": st.just([{"name": "t", "action": "fuzz_pack.a"}]),
        }
    )
    return _files(
        {
            "pack.yaml": _spoilt(pack, keys),
            "actions/a.yaml": _spoilt(action, keys),
            "workflows/w.workflow.yaml": _spoilt(workflow, keys),
        }
    )


def _pack_files() -> st.SearchStrategy[list[registry_pb2.PackFile]]:
    """A pack's files of hostile paths and shapes: a pack.yaml and other files of any content."""
    paths = st.one_of(
        st.sampled_from(_PACK_PATHS),
        hostile_text(30, huge=False),
    )
    documents = st.one_of(
        st.fixed_dictionaries(
            {"ref": st.one_of(st.sampled_from(["fuzz_pack", "fuzz_pack.a", "fuzz_pack.w"]), _prefixed("fuzz"))},
            optional={
                "version": st.one_of(st.just("1.0"), json_values(huge=False)),
                "label": json_values(huge=False),
                "runner_type": st.one_of(st.sampled_from(RUNNER_TYPES), hostile_text(12, huge=False)),
                "entry_point": st.one_of(st.just("a.sh"), hostile_text(20, huge=False)),
                "parameters": json_objects(huge=False),
                "tasks": json_values(huge=False),
            },
        ),
        json_values(huge=False),
    )
    # YAML documents, or any bytes (a huge file too).
    contents = st.one_of(documents.map(lambda d: yaml.safe_dump(d).encode()), hostile_bytes())
    file = st.builds(registry_pb2.PackFile, path=paths, content=contents)
    pack_yaml = st.builds(registry_pb2.PackFile, path=st.just("pack.yaml"), content=contents)
    return st.one_of(
        st.builds(lambda first, rest: [first, *rest], pack_yaml, st.lists(file, max_size=4)), st.lists(file, max_size=6)
    )
