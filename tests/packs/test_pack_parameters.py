"""validate_parameters, coerce_cli_value, secret_names and redact."""

from __future__ import annotations

from typing import Any

import pytest

from attune.packs import FieldViolation, ParameterError, coerce_cli_value, redact, secret_names, validate_parameters

SCHEMA: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "required": True},
    "count": {"type": "integer", "default": 3, "minimum": 1, "maximum": 10},
    "ratio": {"type": "number", "minimum": 0, "maximum": 1},
    "verbose": {"type": "boolean", "default": False},
    "tags": {"type": "array", "default": ["a"]},
    "extra": {"type": "object"},
    "colour": {"type": "string", "enum": ["red", "green"]},
    "token": {"type": "string", "secret": True},
}


def violations(params: dict[str, Any], schema: dict[str, dict[str, Any]] = SCHEMA) -> list[FieldViolation]:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(schema, params)
    return caught.value.violations


def test_defaults_are_applied_and_the_full_dict_returned() -> None:
    assert validate_parameters(SCHEMA, {"name": "x"}) == {"name": "x", "count": 3, "verbose": False, "tags": ["a"]}


def test_defaults_are_copies() -> None:
    first = validate_parameters(SCHEMA, {"name": "x"})
    first["tags"].append("b")
    assert validate_parameters(SCHEMA, {"name": "x"})["tags"] == ["a"]


def test_given_values_are_kept() -> None:
    params = {
        "name": "x",
        "count": 10,
        "ratio": 0.5,
        "verbose": True,
        "tags": [],
        "extra": {"k": 1},
        "colour": "red",
        "token": "t",
    }
    assert validate_parameters(SCHEMA, params) == params


def test_none_counts_as_not_given() -> None:
    assert validate_parameters(SCHEMA, {"name": "x", "count": None})["count"] == 3
    assert violations({"name": None}) == [FieldViolation("name", "required parameter is missing")]


def test_required() -> None:
    assert violations({}) == [FieldViolation("name", "required parameter is missing")]


def test_unknown_parameters_are_rejected() -> None:
    (violation,) = violations({"name": "x", "colr": "red"})
    assert violation.field == "colr" and violation.description.startswith("unknown parameter (known: colour, count,")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("count", True, "expected integer, got boolean"),
        ("count", 2.5, "expected integer, got number 2.5"),
        ("count", "3", "expected integer, got string '3'"),
        ("ratio", False, "expected number, got boolean"),
        ("ratio", "0.5", "expected number, got string '0.5'"),
        ("ratio", float("nan"), "expected number, got number nan"),
        ("verbose", 1, "expected boolean, got integer 1"),
        ("verbose", "true", "expected boolean, got string 'true'"),
        ("tags", "a,b", "expected array, got string 'a,b'"),
        ("extra", [1], "expected object, got array"),
        ("name", 5, "expected string, got integer 5"),
    ],
)
def test_types(field: str, value: Any, message: str) -> None:
    params = {"name": "x", field: value}
    assert violations(params) == [FieldViolation(field, message)]


def test_integer_accepts_a_whole_float_and_returns_an_int() -> None:
    result = validate_parameters(SCHEMA, {"name": "x", "count": 4.0})
    assert result["count"] == 4 and isinstance(result["count"], int)


def test_number_accepts_int_and_float() -> None:
    assert validate_parameters(SCHEMA, {"name": "x", "ratio": 1})["ratio"] == 1
    assert validate_parameters(SCHEMA, {"name": "x", "ratio": 0.25})["ratio"] == 0.25


def test_enum() -> None:
    assert violations({"name": "x", "colour": "blue"}) == [
        FieldViolation("colour", 'must be one of "red", "green", got "blue"')
    ]


def test_enum_does_not_confuse_true_and_1() -> None:
    schema = {"level": {"type": "integer", "enum": [0, 1]}}
    assert validate_parameters(schema, {"level": 1}) == {"level": 1}
    assert violations({"level": True}, schema)[0].description == "expected integer, got boolean"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("count", 0, "must be at least 1, got 0"),
        ("count", 11, "must be at most 10, got 11"),
        ("ratio", -0.1, "must be at least 0, got -0.1"),
        ("ratio", 1.5, "must be at most 1, got 1.5"),
    ],
)
def test_minimum_and_maximum(field: str, value: Any, message: str) -> None:
    assert violations({"name": "x", field: value}) == [FieldViolation(field, message)]
    bound = 1 if field == "count" else 0
    assert validate_parameters(SCHEMA, {"name": "x", field: bound})[field] == bound


def test_all_violations_are_collected() -> None:
    found = violations({"count": 0, "verbose": "no", "colour": "blue", "bogus": 1})
    assert {v.field for v in found} == {"bogus", "name", "count", "verbose", "colour"}
    assert len(found) == 5


def test_error_text_lists_every_violation() -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SCHEMA, {"count": "x"})
    assert str(caught.value) == (
        "parameter 'name': required parameter is missing; parameter 'count': expected integer, got string 'x'"
    )


def test_secret_values_never_appear_in_violations() -> None:
    schema = {
        "pin": {"type": "integer", "secret": True, "enum": [1234], "maximum": 9999},
        "word": {"type": "string", "secret": True, "enum": ["swordfish"]},
    }
    with pytest.raises(ParameterError) as caught:
        validate_parameters(schema, {"pin": "hunter2"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ParameterError) as caught:
        validate_parameters(schema, {"pin": 123456, "word": "opensesame"})
    assert "123456" not in str(caught.value) and "opensesame" not in str(caught.value)
    assert {v.field for v in caught.value.violations} == {"pin", "word"}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("count", "42", 42),
        ("count", " -7 ", -7),
        ("count", "3.0", 3),
        ("ratio", "0.5", 0.5),
        ("ratio", "2", 2),
        ("ratio", "1e3", 1000.0),
        ("verbose", "true", True),
        ("verbose", "YES", True),
        ("verbose", "1", True),
        ("verbose", "False", False),
        ("verbose", "no", False),
        ("verbose", "0", False),
        ("tags", '["a", 1]', ["a", 1]),
        ("extra", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("name", "42", "42"),
        ("name", " spaced = text ", " spaced = text "),
        ("unknown", "7", "7"),
    ],
)
def test_coerce_cli_value(name: str, text: str, expected: Any) -> None:
    value = coerce_cli_value(SCHEMA, name, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("count", "4.5", "cannot read '4.5' as integer"),
        ("count", "many", "cannot read 'many' as integer"),
        ("ratio", "nan", "cannot read 'nan' as number: not a finite number"),
        ("ratio", "half", "cannot read 'half' as number"),
        ("verbose", "maybe", "cannot read 'maybe' as boolean: expected true/false, yes/no or 1/0"),
        ("tags", "a,b", "cannot read 'a,b' as array: invalid JSON"),
        ("tags", '{"a": 1}', "cannot read '{\"a\": 1}' as array: expected a JSON array, got object"),
        ("extra", "[1]", "cannot read '[1]' as object: expected a JSON object, got array"),
    ],
)
def test_coerce_cli_value_errors_name_the_field(name: str, text: str, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        coerce_cli_value(SCHEMA, name, text)
    (violation,) = caught.value.violations
    assert violation.field == name
    assert violation.description.startswith(message)


def test_coerce_cli_value_hides_secret_text() -> None:
    with pytest.raises(ParameterError) as caught:
        coerce_cli_value({"pin": {"type": "integer", "secret": True}}, "pin", "hunter2")
    assert "hunter2" not in str(caught.value) and caught.value.violations[0].field == "pin"


def test_secret_names_and_redact() -> None:
    assert secret_names(SCHEMA) == frozenset({"token"})
    params = {"name": "x", "token": "s3cret"}
    assert redact(SCHEMA, params) == {"name": "x", "token": "********"}
    assert params["token"] == "s3cret"  # a copy
    assert redact(SCHEMA, {"name": "x"}) == {"name": "x"}


def test_check_parameter_schema_normalises_and_reports() -> None:
    from attune.packs import check_parameter_schema

    schema, problems = check_parameter_schema({"n": {"type": "integer", "default": 2.0}, "s": {"type": "strin"}})
    assert schema == {"n": {"type": "integer", "description": "", "required": False, "secret": False, "default": 2}}
    assert problems == [
        ("parameters.s.type", "unknown type 'strin' (one of string, integer, number, boolean, array, object)")
    ]
    assert check_parameter_schema(None) == ({}, [])
