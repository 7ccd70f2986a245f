"""Fuzzing the workflow compiler and the pack loader (issue #13): only refusals come out.

Hypothesis writes workflow documents in the language of docs/workflows.md — tasks, ``next`` with
``when``/``publish``/``do``, joins, ``with_items``, ``retry``, legacy forms, ``vars``,
``output_map``, parameters, nested workflows and templates (hostile ones too: ``'x' * 10**8``,
``range(10**9)``, loops) — and mutations of them: wrong types, missing and unknown keys, huge,
deep and non-JSON values, odd unicode, bad templates, cycles, unknown and duplicate tasks, and
YAML text edited at random. Each goes to the engine (``parse_workflow``, ``compile_workflow``,
then a few events through the pure engine when it compiles) and, as a pack's files, to the pack
loader. The engine may only refuse with ``WorkflowSpecError`` and never raises while it runs; the
loader may only refuse with ``PackError``; no example outlasts the deadline.

CI runs 300 examples per property, always the same ones; ``ATTUNE_FUZZ_EXAMPLES=5000`` runs that
many per property with a fresh seed (``tests/hostile/fuzzing.py``).
"""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from attune.engine import CompiledWorkflow, WorkflowSpecError, compile_workflow, parse_workflow
from attune.packs import PackBundle, PackError, load_pack_files
from tests.engine.driver import Simulation
from tests.hostile.fuzzing import fuzz_settings, long_run_examples

FUZZ = fuzz_settings(ci_examples=300, deadline=timedelta(seconds=5))  # a hang, not a slow machine
# A long run takes as long as its examples do: the deadline per example still catches a hang.
pytestmark = [pytest.mark.timeout(0)] if long_run_examples() else []

SOURCE = "workflows/fuzz.workflow.yaml"
ACTIONS = ["core.noop", "core.echo", "core.local", "fuzz.child", "fuzz.w"]
KNOWN_ACTIONS = frozenset({"core.noop", "core.echo", "core.local"})
TASK_NAMES = ["a", "b", "c", "deploy", "t_1", "x-y"]
STATES = ["succeeded", "failed", "timeout", "cancelled", "abandoned"]

# -- templates ------------------------------------------------------------------------------
_ATOMS = [
    "parameters.name",
    "parameters.hosts",
    "parameters['count']",
    "vars.v",
    "vars['items']",
    "workflow.v",
    "task.a.stdout",
    "task.b",
    "item",
    "index",
    "result()",
    "result().stdout",
    "result()['exit_code']",
    "succeeded()",
    "failed()",
    "completed()",
    "1",
    "-2.5",
    "'x'",
    "'ü\\u2028'",
    "none",
    "true",
    "[1, 'two', [3]]",
    "{'k': 1}",
    "range(3)",
    "lipsum(1, false, 2, 3)",
    "dict(a=1)",
    "namespace(a=1)",
    "cycler(1, 2)",
    "succeeded",
    "undefined_name",
    # hostile: each is refused by a template limit, in milliseconds
    "'x' * 10**8",
    "[0] * 10**8",
    "2 ** (10**9)",
    "range(10**9)",
    "'%0100000000d' % 1",
    "'x' | center(10**8)",
    "('x' * 1000) | replace('x', 'y' * 10000)",
]
_FILTERS = [
    "length",
    "default(0)",
    "upper",
    "string",
    "to_json",
    "tojson",
    "list",
    "join(',')",
    "first",
    "int",
    "sort",
    "unique",
    "map('string')",
    "select",
    "batch(2)",
    "indent(2)",
    "center(10**8)",
    "replace('a', 'bb')",
    "format(1)",
    "sum",
    "items",
    "reverse",
    "trim",
]
_BINARY = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "and", "or", "in"]


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(_BINARY), inner),
            st.builds(lambda a, f: f"{a} | {f}", inner, st.sampled_from(_FILTERS)),
            st.builds(lambda a: f"({a})", inner),
            st.builds(lambda a, b, c: f"{a} if {b} else {c}", inner, inner, inner),
            st.builds(lambda a: f"not {a}", inner),
        )

    return st.recursive(st.sampled_from(_ATOMS), extend, max_leaves=4)


_BAD_TEMPLATES = [
    "{{ x }",
    "{% if %}",
    "{{ }}",
    "{% for %}{% endfor %}",
    "{# open",
    "{{ 1 + }}",
    "{% endif %}",
    "{{ a.b( }}",
]


def _templates(*, bad: bool = False) -> st.SearchStrategy[str]:
    """Templates of every statement kind; ``bad`` adds ones with syntax errors."""
    expr = _expressions()
    return st.one_of(
        st.builds(lambda e: "{{ " + e + " }}", expr),
        st.builds(lambda e: "n={{ " + e + " }}!", expr),
        st.builds(lambda e: "{% for i in " + e + " %}{{ i }},{% endfor %}", expr),
        st.builds(lambda e: "{% if " + e + " %}yes{% else %}no{% endif %}", expr),
        st.builds(lambda e: "{% set s = " + e + " %}{{ s }}", expr),
        st.just("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        *([st.sampled_from(_BAD_TEMPLATES)] if bad else []),
    )


# -- data and documents ---------------------------------------------------------------------
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["", "ok", "{{ not rendered }}", "a,b", "\x00", "\u202e", "😀"]),
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Strategies are built once: building st.recursive ones costs more than drawing from them.
TEMPLATES = _templates()
_VALUES = st.one_of(TEMPLATES, _DATA)


def _name_lists() -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=3, unique=True)


def _targets(names: list[str]) -> st.SearchStrategy[Any]:
    some = st.lists(st.sampled_from(names), min_size=1, max_size=3)
    return st.one_of(st.sampled_from(names), some, some.map(", ".join))


def _publish() -> st.SearchStrategy[Any]:
    entry = st.dictionaries(st.sampled_from(["v", "items", "out", "w"]), _VALUES, min_size=1, max_size=2)
    return st.one_of(st.lists(entry, max_size=2), entry)


PUBLISH = _publish()


@st.composite
def _transition(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if draw(st.booleans()):
        entry["when"] = draw(st.one_of(st.booleans(), TEMPLATES, st.just("{{ succeeded() }}")))
    if draw(st.booleans()):
        entry["publish"] = draw(PUBLISH)
    if draw(st.booleans()):
        entry["do"] = draw(_targets(names))
    return entry


@st.composite
def _task(draw: st.DrawFn, name: str, names: list[str]) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "action": draw(st.sampled_from(ACTIONS))}
    optional = {
        "input": st.dictionaries(st.sampled_from(["x", "message", "cmd", "hosts"]), _VALUES, max_size=3),
        "next": st.lists(_transition(names), max_size=3),
        "join": st.sampled_from(["all", 1, 2]),
        "with_items": st.one_of(TEMPLATES, st.lists(_VALUES, max_size=3), st.just("{{ range(3) }}")),
        "retry": st.fixed_dictionaries(
            {"count": st.integers(1, 3)},
            optional={
                "delay": st.sampled_from([0, 1, 2.5]),
                "backoff": st.sampled_from(["constant", "linear", "exponential"]),
                "max_delay": st.sampled_from([1, 10]),
                "when": TEMPLATES,
            },
        ),
        "timeout": st.sampled_from([1, 30, 0.5]),
        "delay": st.sampled_from([0, 1, 3]),
        "description": st.text(max_size=10),
        "on_success": _targets(names),
        "on_failure": _targets(names),
        "on_timeout": _targets(names),
        "on_complete": _targets(names),
        "decision": st.lists(st.fixed_dictionaries({"when": TEMPLATES, "next": _targets(names)}), max_size=2),
        "publish": PUBLISH,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        task[key] = draw(optional[key])
    if "with_items" in task and draw(st.booleans()):
        task["concurrency"] = draw(st.one_of(st.sampled_from([1, 2]), st.just("{{ 1 + 1 }}")))
    return task


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    """A document in the shape docs/workflows.md describes (it may still be refused: a join
    nothing reaches, a workflow with no entry task…)."""
    names = draw(st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=5, unique=True))
    targets = names[1:] or names  # mostly leave the first task an entry task
    tasks = [draw(_task(name, targets)) for name in names]
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["tasks"] = {task.pop("name"): task for task in tasks}  # the mapping form
    else:
        doc["tasks"] = tasks
    optional = {
        "version": st.sampled_from([1, "1.0", 2.5]),
        "vars": PUBLISH,
        "output_map": PUBLISH,
        "timeout": st.sampled_from([10, 0.5, 3600]),
        "cancellation_policy": st.sampled_from(["allow_finish", "cancel_running"]),
        "parameters": st.dictionaries(
            st.sampled_from(["name", "hosts", "count"]),
            st.fixed_dictionaries(
                {"type": st.sampled_from(["string", "array", "integer", "any"])}, optional={"default": _DATA}
            ),
            max_size=2,
        ),
        "description": st.text(max_size=10),
        "label": st.text(max_size=10),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        doc[key] = draw(optional[key])
    return doc


# -- mutations ------------------------------------------------------------------------------
def _deep(depth: int) -> Any:
    value: Any = "{{ 1 }}"
    for _ in range(depth):
        value = [value]
    return value


_JUNK = st.one_of(
    _SCALARS,
    st.floats(),  # NaN and infinities too
    st.sampled_from([2**64, 10**30, 10**4000, 10**5000, -(10**5000)]).map(int),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.text(st.characters(categories=["Cs", "Co", "Cc", "Zl", "Mn"]), max_size=10),  # surrogates included
    st.sampled_from(
        ["x" * 100_000, "{{ " * 2000, "{% for a in b %}" * 30, "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"]
    ),
    st.integers(0, 150).map(_deep),
    st.just({"name": "a", "action": "core.noop"}),
    st.just([{"name": "a"}, {"name": "a"}]),
    _templates(bad=True),
    _DATA,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document a mutation can touch (the root included)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _junk(draw: st.DrawFn) -> Any:
    # a copy: a later edit may change it in place, and hypothesis may hand out the same object again
    return copy.deepcopy(draw(_JUNK))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def mutated_workflows(draw: st.DrawFn) -> Any:
    """A valid-shaped document, then one to three edits anywhere in it."""
    doc: Any = draw(workflows())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        kind = draw(st.sampled_from(["replace", "delete", "unknown key", "graph"]))
        if not path:
            if kind == "replace":
                doc = _junk(draw)
            continue
        parent, last = _at(doc, path[:-1]), path[-1]
        if kind == "replace":
            parent[last] = _junk(draw)
        elif kind == "delete":
            del parent[last]
        elif kind == "unknown key" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["input", "output", "command", "", "on", "tasks", "name"]))] = _junk(draw)
        elif kind == "graph" and isinstance(parent, dict):
            # unknown targets, self-loops, cycles through every task, duplicate names
            graph = st.sampled_from(["nowhere", "a", ["a", "b", "c"], "a, a", " , ", [{"do": "a"}], 0, 99, "all"])
            parent[draw(st.sampled_from(["do", "on_success", "next", "name", "join"]))] = copy.deepcopy(draw(graph))
    return doc


def _yaml_text(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):  # e.g. an integer too long to write
        assume(False)
        raise AssertionError("unreachable") from None


_YAML_EDITS = [
    "\t",
    ": ",
    "- ",
    "{",
    "]",
    "&a [*a]",
    "*undefined",
    "!!python/object:os.system ",
    "!!binary aGk=",
    "!!set {a}",
    "2001-12-14",
    "\n  tasks: []\n",
    "\ntasks: []\n",
    "'",
    '"\\ud800"',
    "\ufeff",
    "\x00",
    "%YAML 1.1\n---\n",
    "---\n",
    "9" * 5000,
]


@st.composite
def edited_yaml(draw: st.DrawFn) -> str:
    """YAML text of a (maybe mutated) document, with a few edits at random places."""
    text = _yaml_text(draw(st.one_of(workflows(), mutated_workflows())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.sampled_from(_YAML_EDITS) | st.text(max_size=3)) + text[at + cut :]
    return text


# -- what must hold -------------------------------------------------------------------------
def _compile_or_refuse(document: Any) -> CompiledWorkflow | None:
    """The compiled workflow, or None when the engine refused it with WorkflowSpecError — whose
    every error names the source and a place. Any other exception fails the property."""
    try:
        spec = parse_workflow(document, source=SOURCE)
    except WorkflowSpecError as err:
        assert err.errors, "a WorkflowSpecError with no error"
        for error in err.errors:
            assert error.source == SOURCE and error.path and error.message, error
        return None
    compiled = compile_workflow(spec)
    reloaded = CompiledWorkflow.from_dict(json.loads(json.dumps(compiled.to_dict())))
    assert reloaded.digest == compiled.digest
    return compiled


def _outcomes() -> st.SearchStrategy[dict[str, list[dict[str, Any]]]]:
    outcome = st.fixed_dictionaries(
        {"state": st.sampled_from(STATES)},
        optional={
            "result": st.dictionaries(st.sampled_from(["stdout", "exit_code", "items", "x"]), _DATA, max_size=3),
            "duration": st.sampled_from([0, 1, 7]),
            "error": st.text(max_size=20),
        },
    )
    return st.dictionaries(st.sampled_from(TASK_NAMES), st.lists(outcome, max_size=6), max_size=4)


OUTCOMES = _outcomes()


def _run(compiled: CompiledWorkflow, data: st.DataObject) -> None:
    """Drive the compiled workflow to its end with children ending as drawn: the driver checks
    that every step is JSON, that the state reloads, that nothing hangs; the engine may not raise."""
    fixture = {
        "parameters": data.draw(st.fixed_dictionaries({}, optional={"name": _DATA, "hosts": _DATA, "count": _DATA})),
        "outcomes": data.draw(OUTCOMES),
        "run_cap": 3,
        "depth": data.draw(st.sampled_from([0, 11])),
    }
    if data.draw(st.booleans()):
        fixture["cancel_at"] = data.draw(st.sampled_from([0, 1, 5]))
    run = Simulation(fixture, SOURCE, compiled=compiled).execute(max_events=5_000)
    assert run.finish is not None, "the workflow never finished"
    json.dumps(run.finish.to_dict())


@FUZZ
@given(doc=workflows(), data=st.data())
def test_valid_shapes_compile_or_are_refused_and_run_without_errors(doc: dict[str, Any], data: st.DataObject) -> None:
    compiled = _compile_or_refuse(doc)
    if compiled is not None:
        _run(compiled, data)


@FUZZ
@given(doc=mutated_workflows(), data=st.data())
def test_mutated_documents_are_refused_with_spec_errors_only(doc: Any, data: st.DataObject) -> None:
    compiled = _compile_or_refuse(doc)
    if compiled is not None:
        _run(compiled, data)


@FUZZ
@given(text=edited_yaml())
def test_edited_yaml_text_is_refused_with_spec_errors_only(text: str) -> None:
    _compile_or_refuse(text)


def _pack(workflow_text: bytes, linked: bool) -> dict[str, bytes]:
    files = {
        "pack.yaml": b"ref: fuzz\nversion: '1.0.0'\n",
        "actions/child.yaml": b"ref: fuzz.child\nrunner_type: noop\n",
    }
    if linked:  # an action naming the workflow file (it takes the action's ref and parameters)
        files["actions/w.yaml"] = b"ref: fuzz.w\nworkflow_file: workflows/w.workflow.yaml\n"
        files["actions/workflows/w.workflow.yaml"] = workflow_text
    else:
        files["workflows/w.workflow.yaml"] = workflow_text
    return files


def _load_or_refuse(files: dict[str, bytes]) -> None:
    try:
        bundle = load_pack_files(files, known_action_refs=KNOWN_ACTIONS)
    except PackError as err:
        assert err.problems and all(str(problem) for problem in err.problems)
        return
    assert isinstance(bundle, PackBundle) and bundle.ref == "fuzz"


@FUZZ
@given(doc=st.one_of(workflows(), mutated_workflows()), linked=st.booleans())
def test_the_pack_loader_refuses_with_pack_errors_only(doc: Any, linked: bool) -> None:
    if not linked and isinstance(doc, dict):
        doc = {"ref": "fuzz.w", **doc}  # a standalone workflow names itself
    _load_or_refuse(_pack(_yaml_text(doc).encode("utf-8", "surrogatepass"), linked))


@FUZZ
@given(text=edited_yaml(), linked=st.booleans())
def test_the_pack_loader_refuses_edited_yaml_with_pack_errors_only(text: str, linked: bool) -> None:
    if not linked:
        text = "ref: fuzz.w\n" + text
    _load_or_refuse(_pack(text.encode("utf-8", "surrogatepass"), linked))


@pytest.mark.parametrize(
    "document",
    [
        "a: &a ['{{x}}','{{x}}','{{x}}','{{x}}','{{x}}','{{x}}','{{x}}','{{x}}','{{x}}']\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + "tasks: [{name: t, action: core.noop, input: {x: *i}}]\n",
        "tasks: " + "[" * 500 + "]" * 500,
        {"tasks": [{"name": "t", "action": "core.noop", "input": {"x": _deep(3000)}}]},
    ],
    ids=["alias bomb", "deep yaml", "deep mapping"],
)
def test_bombs_are_refused_in_milliseconds(document: Any) -> None:
    began = time.perf_counter()
    with pytest.raises(WorkflowSpecError, match=r"document: (holds more than|nests deeper than)"):
        parse_workflow(document, source=SOURCE)
    assert time.perf_counter() - began < 1.0
