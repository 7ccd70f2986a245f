"""A pack with any invalid file is refused as a whole, every problem naming its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune.packs import PackError, PackProblem, load_pack
from tests.packs.packtools import MakePack, problem_lines, refusal


def test_a_valid_pack_loads(make_pack: MakePack) -> None:
    bundle = load_pack(make_pack({}))
    assert bundle.ref == "demo" and bundle.label == "Demo" and bundle.version == "1.0.0"
    hello = bundle.action("demo.hello")
    assert (hello.name, hello.label, hello.enabled, hello.entry_point) == ("hello", "hello", True, "actions/hello.sh")
    assert hello.parameters["who"]["default"] == "world"
    assert set(bundle.files) == {"pack.yaml", "actions/hello.yaml", "actions/hello.sh"}


def test_digest_changes_with_any_file(make_pack: MakePack, tmp_path: Path) -> None:
    root = make_pack({})
    before = load_pack(root).digest
    (root / "actions" / "hello.sh").write_text("echo changed\n")
    assert load_pack(root).digest != before


def test_hidden_files_and_caches_are_not_part_of_the_pack(make_pack: MakePack) -> None:
    root = make_pack({".git/HEAD": "ref", "actions/__pycache__/x.cpython-311.pyc": b"\0"})
    assert set(load_pack(root).files) == {"pack.yaml", "actions/hello.yaml", "actions/hello.sh"}


def test_missing_folder(tmp_path: Path) -> None:
    err = refusal(tmp_path / "nowhere")
    assert "no such directory" in str(err)


def test_missing_pack_yaml(make_pack: MakePack) -> None:
    err = refusal(make_pack({"pack.yaml": None}))
    assert problem_lines(err)[0].startswith("pack.yaml: missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ref: [demo\n", "pack.yaml: invalid YAML: line 2, column 1"),
        ("- ref: demo\n", "pack.yaml: must be a YAML mapping, got array"),
        ("label: x\nversion: '1'\n", "pack.yaml: field ref: missing or invalid"),
        ("ref: my.pack\nversion: '1'\n", "pack.yaml: field ref: missing or invalid"),
        ("ref: demo\nversion: 1.0\n", 'pack.yaml: field version: must be a string such as "1.0.0"; quote it'),
        ("ref: demo\nversion: '1'\nowner: me\n", "pack.yaml: field owner: unknown field"),
        ("ref: demo\nref: demo\nversion: '1'\n", "duplicate key 'ref'"),
    ],
)
def test_malformed_pack_yaml(make_pack: MakePack, text: str, expected: str) -> None:
    assert expected in str(refusal(make_pack({"pack.yaml": text})))


def test_malformed_action_yaml(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/bad.yaml": "ref: demo.bad\nrunner_type: [shell\n"}))
    assert problem_lines(err) == ["actions/bad.yaml: invalid YAML: line 3, column 1: did not find expected ',' or ']'"]


def test_unknown_action_field(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.yaml": ECHO_WITH("runner: shell\n")}))
    assert "actions/hello.yaml: field runner: unknown field (allowed: ref, label," in str(err)


def ECHO_WITH(extra: str, *, ref: str = "demo.hello") -> str:
    return f"ref: {ref}\nrunner_type: shell\nentry_point: hello.sh\n{extra}"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("other.hello", "field ref: 'other.hello' belongs to pack 'other', not to this pack 'demo'"),
        ("hello", "field ref: 'hello' is not demo.<name>"),
        ("demo.a.b", "field ref: 'demo.a.b' is not demo.<name>"),
        ("''", "field ref: missing; must be demo.<name>"),
    ],
)
def test_action_ref_must_be_pack_dot_name(make_pack: MakePack, ref: str, expected: str) -> None:
    err = refusal(make_pack({"actions/hello.yaml": f"ref: {ref}\nrunner_type: shell\nentry_point: hello.sh\n"}))
    assert f"actions/hello.yaml: {expected}" in str(err)


def test_duplicate_refs(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/again.yaml": ECHO_WITH("")}))
    assert "actions/hello.yaml: field ref: 'demo.hello' is already declared by actions/again.yaml" in str(err)


def test_missing_entry_point_file(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.sh": None}))
    assert problem_lines(err) == ["actions/hello.yaml: field entry_point: file actions/hello.sh not found in the pack"]


def test_entry_point_may_not_leave_actions(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.yaml": "ref: demo.hello\nrunner_type: shell\nentry_point: ../pack.yaml\n"}))
    assert "field entry_point: '../pack.yaml' must be a path inside actions/" in str(err)


def test_script_action_needs_an_entry_point(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.yaml": "ref: demo.hello\nrunner_type: python\n"}))
    assert "actions/hello.yaml: field entry_point: missing" in str(err)


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        ("bash", "field runner_type: unknown runner_type 'bash' (one of shell, python, nodejs, noop, ask, workflow)"),
        ("workflow", "field runner_type: a workflow action names its workflow with workflow_file"),
    ],
)
def test_bad_runner_type(make_pack: MakePack, runner: str, expected: str) -> None:
    err = refusal(make_pack({"actions/hello.yaml": f"ref: demo.hello\nrunner_type: {runner}\nentry_point: hello.sh\n"}))
    assert f"actions/hello.yaml: {expected}" in str(err)


def test_noop_action_takes_no_entry_point(make_pack: MakePack) -> None:
    assert load_pack(make_pack({"actions/nothing.yaml": "ref: demo.nothing\nrunner_type: noop\n"}))
    err = refusal(make_pack({"actions/nothing.yaml": "ref: demo.nothing\nrunner_type: noop\nentry_point: hello.sh\n"}))
    assert "actions/nothing.yaml: field entry_point: a noop action runs nothing" in str(err)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("enabled: 'yes'\n", "field enabled: must be true or false, got string 'yes'"),
        ("timeout: 0\n", "field timeout: must be a positive number of seconds, got integer 0"),
        ("timeout: soon\n", "field timeout: must be a positive number of seconds"),
        ("tags: ops\n", "field tags: must be a list of strings"),
        ("label: [x]\n", "field label: must be a string, got array"),
        ("output: [x]\n", "field output: must be a mapping, got array"),
    ],
)
def test_bad_common_fields(make_pack: MakePack, extra: str, expected: str) -> None:
    assert f"actions/hello.yaml: {expected}" in str(refusal(make_pack({"actions/hello.yaml": ECHO_WITH(extra)})))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ("count: {type: integr}", "field parameters.count.type: unknown type 'integr'"),
        ("count: {description: x}", "field parameters.count.type: missing; one of string, integer"),
        (
            "count: {type: integer, default: many}",
            "field parameters.count.default: expected integer, got string 'many'",
        ),
        ("count: {type: integer, default: 1.5}", "field parameters.count.default: expected integer, got number 1.5"),
        ("flag: {type: boolean, default: 1}", "field parameters.flag.default: expected boolean, got integer 1"),
        ("count: {type: integer, enum: 3}", "field parameters.count.enum: must be a non-empty list"),
        (
            "count: {type: integer, enum: [1, two]}",
            "field parameters.count.enum[1]: expected integer, got string 'two'",
        ),
        ("name: {type: string, enum: [a, b], default: c}", 'field parameters.name.default: must be one of "a", "b"'),
        (
            "name: {type: string, minimum: 1}",
            "field parameters.name.minimum: only integer and number parameters take minimum",
        ),
        (
            "count: {type: integer, maximum: lots}",
            "field parameters.count.maximum: must be a number, got string 'lots'",
        ),
        (
            "count: {type: integer, minimum: 5, maximum: 1}",
            "field parameters.count.minimum: 5 is greater than maximum 1",
        ),
        ("count: {type: integer, minimum: 5, default: 1}", "field parameters.count.default: must be at least 5, got 1"),
        ("count: {type: integer, required: 'yes'}", "field parameters.count.required: must be true or false"),
        ("token: {type: string, secret: 1}", "field parameters.token.secret: must be true or false"),
        ("count: {type: integer, requried: true}", "field parameters.count.requried: unknown field"),
        ("bad-name: {type: string}", "field parameters.bad-name: parameter names must be letters"),
        ("count: integer", "field parameters.count: must be a mapping such as {type: string}"),
    ],
)
def test_bad_parameter_schema(make_pack: MakePack, schema: str, expected: str) -> None:
    err = refusal(make_pack({"actions/hello.yaml": ECHO_WITH(f"parameters:\n  {schema}\n")}))
    assert f"actions/hello.yaml: {expected}" in str(err)


def test_parameters_must_be_a_mapping(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.yaml": ECHO_WITH("parameters: [who]\n")}))
    assert "actions/hello.yaml: field parameters: must be a mapping of parameter name to schema" in str(err)


def test_a_secret_default_is_not_echoed(make_pack: MakePack) -> None:
    err = refusal(
        make_pack(
            {"actions/hello.yaml": ECHO_WITH("parameters:\n  pin: {type: integer, secret: true, default: hunter2}\n")}
        )
    )
    assert "field parameters.pin.default: expected integer" in str(err)
    assert "hunter2" not in str(err)


def test_every_problem_is_listed_and_the_whole_pack_is_refused(make_pack: MakePack) -> None:
    err = refusal(
        make_pack(
            {
                "pack.yaml": "ref: demo\n",
                "actions/a.yaml": "ref: demo.a\nrunner_type: shell\nentry_point: missing.sh\n",
                "actions/b.yaml": "ref: demo.b\nrunner_type: nope\n",
                "actions/c.yaml": "ref: demo.c\nrunner_type: noop\nparameters:\n  n: {type: integr}\n",
            }
        )
    )
    assert [(p.file, p.field) for p in err.problems] == [
        ("pack.yaml", "version"),
        ("actions/a.yaml", "entry_point"),
        ("actions/b.yaml", "runner_type"),
        ("actions/c.yaml", "parameters.n.type"),
    ]
    assert len(problem_lines(err)) == 4


def test_problem_renders_file_and_field() -> None:
    problem = PackProblem("actions/x.yaml", "parameters.count.type", "unknown type 'integr'")
    assert str(problem) == "actions/x.yaml: field parameters.count.type: unknown type 'integr'"
    assert str(PackProblem("pack.yaml", "", "missing")) == "pack.yaml: missing"
    err = PackError([problem, PackProblem("pack.yaml", "", "missing")])
    assert str(err).splitlines() == [str(problem), "pack.yaml: missing"]


def test_not_utf8(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/hello.yaml": b"ref: demo.hello\xff\n"}))
    assert "actions/hello.yaml: not UTF-8 text" in str(err)


def test_every_problem_of_one_parameter_is_listed(make_pack: MakePack) -> None:
    schema = "parameters:\n  count: {type: integer, requried: true, default: many, secret: 'no'}\n"
    err = refusal(make_pack({"actions/hello.yaml": ECHO_WITH(schema)}))
    assert [p.field for p in err.problems] == [
        "parameters.count.requried",
        "parameters.count.secret",
        "parameters.count.default",
    ]


def test_a_pack_can_be_validated_from_its_files_in_memory(make_pack: MakePack) -> None:
    from attune.packs import load_pack_files, pack_digest, read_pack_files

    files = read_pack_files(make_pack({}))
    bundle = load_pack_files(files)
    assert bundle.digest == pack_digest(files) == load_pack(make_pack({})).digest
    with pytest.raises(PackError, match=r"actions/hello\.yaml: field entry_point"):
        load_pack_files({k: v for k, v in files.items() if k != "actions/hello.sh"})


def test_digest_is_not_fooled_by_moving_bytes_between_path_and_content() -> None:
    from attune.packs import pack_digest

    assert pack_digest({"ab": b"c"}) != pack_digest({"a": b"bc"})
    assert pack_digest({"a": b"1", "b": b"2"}) == pack_digest({"b": b"2", "a": b"1"})
