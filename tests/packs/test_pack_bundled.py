"""The bundled core and examples packs load, and their workflows pass the engine's validation."""

from __future__ import annotations

import pytest

from attune.packs import PackBundle, bundled_pack_path, load_pack

CORE_REFS = {"core.ask", "core.echo", "core.noop", "core.local", "core.sleep"}
EXAMPLE_WORKFLOWS = {
    "examples.single_echo",
    "examples.sequence",
    "examples.failure_handler",
    "examples.fail_after_handler",
    "examples.parallel_join",
    "examples.countdown",
    "examples.with_items",
    "examples.deploy",
    "examples.retry",
    "examples.nested",
    "examples.rerun",
    "examples.approval",
    "examples.exclusive_deploy",
    "examples.pausable",
}


@pytest.fixture(scope="module")
def core() -> PackBundle:
    return load_pack(bundled_pack_path("core"))


@pytest.fixture(scope="module")
def examples(core: PackBundle) -> PackBundle:
    return load_pack(bundled_pack_path("examples"), known_action_refs=[a.ref for a in core.actions])


def test_core_pack_has_its_four_actions(core: PackBundle) -> None:
    assert core.ref == "core"
    assert {a.ref for a in core.actions} == CORE_REFS
    echo = core.action("core.echo")
    assert (echo.runner_type, echo.entry_point) == ("shell", "actions/echo.sh")
    assert echo.parameters["message"] == {
        "type": "string",
        "description": "The text to print.",
        "required": True,
        "secret": False,
    }
    assert core.action("core.noop").runner_type == "noop"
    assert core.action("core.noop").entry_point is None
    assert core.action("core.local").parameters["cmd"]["required"] is True
    assert core.action("core.sleep").parameters["seconds"]["default"] == 1


def test_core_pack_files_and_digest_are_stable(core: PackBundle) -> None:
    assert {"pack.yaml", "actions/echo.sh", "actions/local.sh", "actions/sleep.sh"} <= set(core.files)
    assert all(not path.endswith(".pyc") for path in core.files)
    again = load_pack(bundled_pack_path("core"))
    assert again.digest == core.digest and len(core.digest) == 64
    for action in core.actions:
        if action.entry_point is not None:
            assert action.entry_point in core.files


def test_examples_pack_refs(examples: PackBundle) -> None:
    refs = {a.ref for a in examples.actions}
    assert EXAMPLE_WORKFLOWS | {"examples.py_sum", "examples.node_hello", "examples.flaky"} == refs
    assert all(a.pack == "examples" for a in examples.actions)
    assert examples.action("examples.py_sum").runner_type == "python"
    assert examples.action("examples.node_hello").runner_type == "nodejs"


def test_single_echo_is_a_workflow_action_taking_its_actions_metadata(examples: PackBundle) -> None:
    single = examples.action("examples.single_echo")
    assert single.runner_type == "workflow"
    assert single.entry_point is None
    assert single.workflow_source == "actions/workflows/single_echo.workflow.yaml"
    assert single.workflow_yaml == examples.files[single.workflow_source].decode()
    assert "core.echo" in single.workflow_yaml
    assert set(single.parameters) == {"message"}


def test_every_example_workflow_passes_engine_validation(examples: PackBundle) -> None:
    from attune.engine import parse_workflow, workflow_action_refs

    known = {a.ref for a in examples.actions} | CORE_REFS
    for ref in EXAMPLE_WORKFLOWS:
        action = examples.action(ref)
        assert action.runner_type == "workflow" and action.workflow_yaml is not None
        spec = parse_workflow(action.workflow_yaml, source=action.workflow_source or ref)
        assert workflow_action_refs(spec) <= known, ref


def test_examples_need_core_registered_first() -> None:
    from attune.packs import PackError

    with pytest.raises(PackError, match=r"core\.echo"):
        load_pack(bundled_pack_path("examples"))


def test_unknown_bundled_pack_is_named() -> None:
    with pytest.raises(ValueError, match=r"no bundled pack 'nope'.*core.*examples"):
        bundled_pack_path("nope")


def test_exclusive_deploy_declares_one_run_per_environment(examples: PackBundle) -> None:
    policy = examples.action("examples.exclusive_deploy").concurrency
    assert policy is not None and (policy.limit, policy.on_limit) == (1, "queue")
    assert policy.render_key({"env": "prod", "seconds": 1}) == "prod"
