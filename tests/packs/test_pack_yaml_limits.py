"""Pack YAML is bounded: size, aliases, what aliases expand to and nesting, each at its limit
accepted and one past it refused naming the setting; and it yields JSON data only."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from attune.config import Settings
from attune.packs import DEFAULT_LIMITS, PackError, PackLimits, YamlLimits, YamlProblem, load_pack_files, load_yaml
from attune.packs._limits import NAME_COLUMN_WIDTH, VERSION_MAX_LENGTH
from attune.storage.schema import actions, packs
from tests.packs.packtools import ECHO_YAML, PACK_YAML

SMALL = YamlLimits(max_bytes=200, max_aliases=3, max_nodes=20, max_depth=3)


def laughs(indent: str, levels: int = 9, fan_out: int = 9) -> str:
    """Mapping entries at `indent` standing for fan_out**levels strings: l0 lists "lol"s, each
    further level lists aliases of the one before."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * fan_out) + "]"]
    for level in range(1, levels):
        lines.append(f"{indent}l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


def billion_laughs() -> str:
    """An action file whose parameter default stands for 9**9 strings, in under 500 bytes."""
    return "ref: demo.bomb\nrunner_type: noop\nparameters:\n  p:\n    type: object\n    default:\n" + laughs(" " * 6)


def refused(text: str, limits: YamlLimits = SMALL) -> str:
    with pytest.raises(YamlProblem) as caught:
        load_yaml(text.encode(), limits)
    return str(caught.value)


def test_a_billion_laughs_is_refused_in_milliseconds_naming_the_limit() -> None:
    bomb = billion_laughs()
    assert len(bomb) < 1024
    started = time.perf_counter()
    message = refused(bomb, DEFAULT_LIMITS.yaml)
    elapsed = time.perf_counter() - started
    assert message.endswith(
        "keys and values once its aliases are expanded, over the limit of 100,000 (ATTUNE_MAX_YAML_NODES)"
    )
    assert int(message.split()[0].replace(",", "")) > 10**8
    assert elapsed < 0.05, f"took {elapsed:.3f}s"


def test_a_bomb_in_a_pack_names_its_file() -> None:
    files = {"pack.yaml": PACK_YAML.encode(), "actions/bomb.yaml": billion_laughs().encode()}
    with pytest.raises(PackError) as caught:
        load_pack_files(files)
    assert [p.file for p in caught.value.problems] == ["actions/bomb.yaml"]
    assert "ATTUNE_MAX_YAML_NODES" in str(caught.value)


def test_size_at_the_limit_and_over() -> None:
    at_limit = "a: " + "x" * (SMALL.max_bytes - 4) + "\n"
    assert len(at_limit) == SMALL.max_bytes
    assert load_yaml(at_limit.encode(), SMALL) == {"a": "x" * (SMALL.max_bytes - 4)}
    message = refused(at_limit + " ")
    assert message == "201 bytes, over the limit of 200 bytes for a YAML file (ATTUNE_MAX_YAML_BYTES)"


def test_aliases_at_the_limit_and_over() -> None:
    assert load_yaml(b"a: &a 1\nb: [*a, *a, *a]\n", SMALL) == {"a": 1, "b": [1, 1, 1]}
    assert refused("a: &a 1\nb: [*a, *a, *a, *a]\n") == "4 aliases, over the limit of 3 (ATTUNE_MAX_YAML_ALIASES)"


def test_expanded_values_at_the_limit_and_over() -> None:
    # The root mapping, 2 keys, the anchored list and its 4 items, and the alias counted as a copy: 12.
    text = "a: &a [1, 2, 3, 4]\nb: *a\n"
    assert load_yaml(text.encode(), YamlLimits(max_bytes=200, max_aliases=3, max_nodes=13, max_depth=3))
    message = refused(text, YamlLimits(max_bytes=200, max_aliases=3, max_nodes=12, max_depth=3))
    assert message == "13 keys and values once its aliases are expanded, over the limit of 12 (ATTUNE_MAX_YAML_NODES)"


def test_expanded_text_is_bounded_by_the_size_limit() -> None:
    text = "a: &a " + "x" * 60 + "\nb: [*a, *a]\n"  # keys a and b, 60 characters, then 120 more
    assert load_yaml(text.encode(), YamlLimits(max_bytes=182, max_aliases=3, max_nodes=20, max_depth=3))
    message = refused(text, YamlLimits(max_bytes=181, max_aliases=3, max_nodes=20, max_depth=3))
    assert message == (
        "182 characters of text once its aliases are expanded, over the limit of 181 (ATTUNE_MAX_YAML_BYTES)"
    )


def test_nesting_at_the_limit_and_over() -> None:
    assert load_yaml(b"a: {b: [1]}\n", SMALL) == {"a": {"b": [1]}}
    assert refused("a: {b: [[1]]}\n") == "lists and mappings nested 4 deep, over the limit of 3 (ATTUNE_MAX_YAML_DEPTH)"


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert "contains itself" in refused("a: &a [1, *a]\n")
    assert "contains itself" in refused("a: &a {b: *a}\n")


def test_merge_keys_expand_as_copies() -> None:
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  z: 3\n"
    assert load_yaml(text.encode(), DEFAULT_LIMITS.yaml)["derived"] == {"x": 1, "y": 2, "z": 3}
    laughs = "l0: &l0 {a: 1, b: 2, c: 3}\n" + "".join(
        f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}, *l{i - 1}]}}\n" for i in range(1, 12)
    )
    assert "ATTUNE_MAX_YAML_NODES" in refused(laughs, DEFAULT_LIMITS.yaml)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: 9223372036854775807", 2**63 - 1),
        ("a: -9223372036854775808", -(2**63)),
        ("a: 2001-12-14", "2001-12-14"),  # a timestamp stays the text it is
        ("a: 2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("a: 2001-13-45", "2001-13-45"),
        ("a: 0x1f", 31),
    ],
)
def test_values_are_json_data(text: str, value: object) -> None:
    assert load_yaml(text.encode(), DEFAULT_LIMITS.yaml) == {"a": value}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 9223372036854775808", "integer 9223372036854775808 is out of range (integers must fit in 64 bits)"),
        ("a: " + "1" * 5000, "integer 11111111111111111111… (5000 characters) is out of range"),
        ("a: 0x" + "f" * 17, "is out of range"),
        ("a: !!binary AAAA", "line 1, column 4: !!binary values are not supported"),
        ("a: !!set {x}", "!!set values are not supported"),
        ("a: !!python/object:os.system x", "could not determine a constructor"),
        ("a: !!int abc", "line 1, column 4: abc is not an integer"),
        ("a: !!bool maybe", "maybe is not a boolean"),
        ("a: !!float x", "x is not a number"),
        ("a: !!map x", "expected a mapping node, but found scalar"),
        ("a: 1\na: 2", "duplicate key 'a'"),
        ("a: [1", "invalid YAML: line 2, column 1"),
    ],
)
def test_what_is_not_json_data_is_refused_with_where(text: str, expected: str) -> None:
    assert expected in refused(text, DEFAULT_LIMITS.yaml)


def test_the_engine_checks_a_workflow_as_the_pack_loader_read_it() -> None:
    """Its own YAML reading would make a datetime of a timestamp and crash on ``!!timestamp ''``."""
    workflow = "ref: demo.flow\nversion: 1\ntasks:\n  - name: t\n    action: core.noop\n    input: {{d: {}}}\n"
    for value in ("2001-12-14", "!!timestamp ''"):
        files = {"pack.yaml": PACK_YAML.encode(), "workflows/flow.workflow.yaml": workflow.format(value).encode()}
        assert load_pack_files(files, known_action_refs={"core.noop"}).action("demo.flow").is_workflow


def test_not_utf8() -> None:
    with pytest.raises(YamlProblem, match=r"not UTF-8 text \(byte 3\)"):
        load_yaml(b"a: \xff", DEFAULT_LIMITS.yaml)


def test_limits_come_from_the_settings() -> None:
    settings = Settings.from_env({"ATTUNE_MAX_YAML_NODES": "7", "ATTUNE_MAX_PACK_FILES": "3"})
    limits = PackLimits.from_settings(settings)
    assert (limits.yaml.max_nodes, limits.max_files) == (7, 3)
    assert PackLimits.from_settings(Settings()) == DEFAULT_LIMITS
    files = {"pack.yaml": PACK_YAML.encode(), "actions/hello.yaml": ECHO_YAML.encode(), "actions/hello.sh": b""}
    with pytest.raises(PackError, match="ATTUNE_MAX_YAML_NODES"):
        load_pack_files(files, limits=limits)


def test_fixed_lengths_are_the_registry_columns() -> None:
    def width(column: sa.Column[str]) -> int | None:
        assert isinstance(column.type, sa.String)
        return column.type.length

    assert width(packs.c.version) == VERSION_MAX_LENGTH
    assert width(packs.c.ref) == width(actions.c.ref) == NAME_COLUMN_WIDTH
    # ATTUNE_MAX_NAME_LENGTH bounds the refs a pack declares, never beyond their columns.
    assert PackLimits.from_settings(Settings(max_name_length=1000)).max_name_length == NAME_COLUMN_WIDTH
    assert DEFAULT_LIMITS.max_name_length == Settings().max_name_length
