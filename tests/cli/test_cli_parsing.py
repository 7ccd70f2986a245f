"""The CLI without a server: argument parsing, -p typing, the JSON shape, error lines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import struct_from_dict
from attune_services.cli.client import CliError
from attune_services.cli.main import build_parser, run
from attune_services.cli.output import execution_json, failure_json
from attune_services.cli.params import build_parameters, split_assignment

SCHEMA = {
    "count": {"type": "integer"},
    "ratio": {"type": "number"},
    "loud": {"type": "boolean"},
    "tags": {"type": "array"},
    "extra": {"type": "object"},
    "message": {"type": "string"},
}


def test_global_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--output", "json", "--address", "h:1", "run", "core.echo"])
    after = parser.parse_args(["run", "core.echo", "--output", "json", "--address", "h:1"])
    for args in (before, after):
        assert (args.output, args.address, args.ref) == ("json", "h:1", "core.echo")
    assert parser.parse_args(["run", "core.echo"]).output == "text"


def test_run_collects_repeated_params_and_flags() -> None:
    args = build_parser().parse_args(
        ["run", "examples.x", "-p", "a=1", "-p", "b=x=y", "--params-json", '{"c": 3}', "--wait", "--timeout", "2.5"]
    )
    assert args.params == ["a=1", "b=x=y"]
    assert (args.params_json, args.wait, args.timeout) == ('{"c": 3}', True, 2.5)


def test_params_are_typed_by_the_schema() -> None:
    params = build_parameters(
        SCHEMA,
        ["count=3", "ratio=0.5", "loud=yes", 'tags=["a", "b"]', 'extra={"k": 1}', "message=42"],
        None,
    )
    assert params == {"count": 3, "ratio": 0.5, "loud": True, "tags": ["a", "b"], "extra": {"k": 1}, "message": "42"}


def test_p_values_win_over_params_json() -> None:
    params = build_parameters(SCHEMA, ["count=7"], '{"count": 1, "message": "kept"}')
    assert params == {"count": 7, "message": "kept"}


def test_a_value_of_the_wrong_type_names_the_parameter() -> None:
    with pytest.raises(CliError) as caught:
        build_parameters(SCHEMA, ["count=many"], None)
    assert caught.value.message.startswith("parameter 'count': ")
    assert "integer" in caught.value.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[1]", "expected a JSON object"), ("{bad", "not valid JSON")],
)
def test_params_json_must_be_an_object(text: str, needle: str) -> None:
    with pytest.raises(CliError, match=needle):
        build_parameters(SCHEMA, [], text)


def test_an_assignment_needs_an_equals_sign() -> None:
    assert split_assignment("k=v=w") == ("k", "v=w")
    with pytest.raises(CliError, match="expected key=value"):
        split_assignment("novalue")


def test_execution_json_follows_the_contract() -> None:
    parent = execution_pb2.Execution(
        id="e1",
        action_ref="examples.single_echo",
        state=common_pb2.EXECUTION_STATE_SUCCEEDED,
        result=struct_from_dict({"succeeded": True, "message": "hi", "n": 2}),
    )
    child = execution_pb2.Execution(
        id="e2",
        action_ref="core.echo",
        state=common_pb2.EXECUTION_STATE_FAILED,
        error="exit 1",
        link=common_pb2.WorkflowLink(workflow_execution_id="e1", task_name="echo", run=1, item_index=-1, attempt=1),
    )
    plain = execution_pb2.Execution(id="e3", action_ref="core.noop", state=common_pb2.EXECUTION_STATE_RUNNING)
    doc = execution_json(parent, [child, plain])
    assert doc == {
        "id": "e1",
        "action_ref": "examples.single_echo",
        "state": "succeeded",
        "result": {"succeeded": True, "message": "hi", "n": 2},
        "error": None,
        "children": [
            {
                "id": "e2",
                "action_ref": "core.echo",
                "state": "failed",
                "task": "echo",
                "result": None,
                "error": "exit 1",
            },
            {"id": "e3", "action_ref": "core.noop", "state": "running", "result": None, "error": None},
        ],
    }
    assert set(failure_json("x.y", "boom")) == set(doc)


def test_usage_errors_exit_2() -> None:
    assert run(["run"]) == 2


def test_an_unreachable_server_is_one_line_and_one_json_object() -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "attune_services.cli",
            "--address",
            "127.0.0.1:9",
            "run",
            "core.echo",
            "-p",
            "message=hi",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["state"] is None and doc["id"] is None and "cannot reach attune" in doc["error"]
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("attune: error: ") and "Traceback" not in proc.stderr


def test_rerun_task_inputs_are_grouped_by_task_and_typed_as_json() -> None:
    from attune_services.cli.cmd_rerun import parse_task_inputs

    inputs = parse_task_inputs(["deploy.force=true", "deploy.cmd=./go now", "b.x.y=[1]"], ["deploy", "b.x"])
    assert inputs == {"deploy": {"force": True, "cmd": "./go now"}, "b.x": {"y": [1]}}


@pytest.mark.parametrize(
    ("given", "named"), [("deploy=1", "TASK.KEY=VALUE"), ("build.x=1", "not given with --from-task")]
)
def test_rerun_task_input_refusals_name_the_problem(given: str, named: str) -> None:
    from attune_services.cli.cmd_rerun import parse_task_inputs

    with pytest.raises(CliError, match=named):
        parse_task_inputs([given], ["deploy"])
