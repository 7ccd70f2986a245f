"""The sealing and masking libraries (envelopes, the key ring, key files, masks) and the
coordinator's use of them for a workflow's stored rows."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from attune.config import Settings
from attune.security.masking import SecretValues
from attune.security.sealing import (
    SEALED,
    Sealer,
    SecretKey,
    SecretKeyError,
    ensure_key_file,
    is_sealed,
    keys_from_settings,
    new_key_text,
    open_parameters,
    seal_parameters,
    sealer_from_settings,
)
from attune_services.coordinator.rows import NewTaskRun, StepWrite, WorkflowFinish
from attune_services.coordinator.secrets import WorkflowSecrets


def key() -> SecretKey:
    return SecretKey.from_base64(new_key_text(), where="test")


def test_a_sealed_value_opens_to_the_same_json_and_never_holds_it_in_clear() -> None:
    sealer = Sealer([key()])
    value = {"password": "hunter2", "n": [1, 2.5, None, True]}
    envelope = sealer.seal(value)
    assert is_sealed(envelope)
    assert "hunter2" not in envelope[SEALED]
    assert envelope[SEALED].startswith(f"v1:{sealer.newest.id}:")
    assert sealer.unseal(envelope) == value
    assert sealer.seal(value) != envelope, "a fresh nonce per seal"


def test_an_altered_value_is_refused() -> None:
    sealer = Sealer([key()])
    token = sealer.seal("hunter2")[SEALED]
    body = token.rsplit(":", 1)[1]
    altered = token[: -len(body)] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(SecretKeyError, match="corrupt or was altered"):
        sealer.unseal({SEALED: altered})


def test_a_missing_key_is_an_error_naming_its_id() -> None:
    old, new = key(), key()
    envelope = Sealer([old]).seal("hunter2")
    with pytest.raises(SecretKeyError, match=f"needs secret key '{old.id}', which is not configured") as err:
        Sealer([new]).unseal(envelope)
    assert "hunter2" not in str(err.value)


def test_the_newest_key_seals_and_older_ones_still_open() -> None:
    old, new = key(), key()
    by_old = Sealer([old]).seal("a")
    ring = Sealer([new, old])
    assert ring.unseal(by_old) == "a"
    assert ring.seal("b")[SEALED].split(":")[1] == new.id
    resealed, count = ring.reseal({"x": by_old, "y": [by_old, 3], "z": ring.seal("c")})
    assert count == 2, "only what the old key sealed"
    assert Sealer([new]).open_all(resealed) == {"x": "a", "y": ["a", 3], "z": "c"}


def test_secret_parameters_are_sealed_one_by_one() -> None:
    sealer = Sealer([key()])
    stored = seal_parameters(sealer, {"user": "ada", "password": "hunter2"}, ["password"])
    assert stored["user"] == "ada" and is_sealed(stored["password"])
    assert open_parameters(sealer, stored) == {"user": "ada", "password": "hunter2"}
    assert open_parameters(None, {"user": "ada"}) == {"user": "ada"}, "nothing sealed: no key needed"
    with pytest.raises(SecretKeyError, match="no secret key is configured"):
        open_parameters(None, stored)


def test_keys_come_from_the_setting_newest_first_then_the_file(tmp_path: Path) -> None:
    a, b, c = new_key_text(), new_key_text(), new_key_text()
    file = tmp_path / "keys"
    file.write_text(f"# rotated in March\n{c}\n")
    keys = keys_from_settings(Settings(secret_key=f"{a}, {b}", secret_key_file=str(file)))
    assert [k.material for k in keys] == [SecretKey.from_base64(t, where="").material for t in (a, b, c)]


def test_a_malformed_key_is_an_error_that_does_not_quote_it() -> None:
    with pytest.raises(SecretKeyError, match="ATTUNE_SECRET_KEY, key 1: a secret key must be 32 bytes, got 5"):
        keys_from_settings(Settings(secret_key="aGVsbG8="))
    with pytest.raises(SecretKeyError, match="must be base64") as err:
        keys_from_settings(Settings(secret_key="not base64!"))
    assert "not base64!" not in str(err.value)


def test_the_key_file_is_created_once_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_key_file(tmp_path / "home" / "secret.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    ensure_key_file(path)
    assert path.read_text() == first, "an existing key is never replaced"
    monkeypatch.setenv("ATTUNE_HOME", str(tmp_path / "home"))
    sealer = sealer_from_settings(Settings())
    assert sealer is not None, "$ATTUNE_HOME/secret.key is found without a setting"
    assert sealer.newest.material == SecretKey.from_base64(first, where="").material
    monkeypatch.setenv("ATTUNE_HOME", str(tmp_path / "elsewhere"))
    assert sealer_from_settings(Settings()) is None


def test_masking_finds_a_secret_in_text_and_inside_json() -> None:
    secrets = SecretValues.of_parameters({"password": 'pa"ss', "pin": 4242, "empty": ""}, ["password", "pin", "empty"])
    masked = secrets.mask(
        {"stdout": 'it is pa"ss\n', "stderr": '{"p": "pa\\"ss"}', "pin": 4242, "list": ["x4242y"], "ok": "fine"}
    )
    assert masked == {
        "stdout": "it is ********\n",
        "stderr": '{"p": "********"}',
        "pin": "********",
        "list": ["x********y"],
        "ok": "fine",
    }
    assert not SecretValues.of([""]), "an empty secret masks nothing"


def test_a_workflow_stores_every_entry_holding_a_secret_sealed_and_reloads_it() -> None:
    sealer = Sealer([key()])
    handed_off = seal_parameters(sealer, {"password": "hunter2", "label": "x"}, ["password"])
    params, secrets = WorkflowSecrets.of_parameters(sealer, handed_off)
    assert params == {"password": "hunter2", "label": "x"} and secrets is not None
    run = NewTaskRun("t:1", 1, "t", 1, None, 1, "p.a", {"input": {"password": "hunter2"}}, 1.0)
    plain_run = NewTaskRun("u:1", 2, "u", 1, None, 1, "p.a", {"input": {"label": "x"}}, 1.0)
    write = StepWrite("w1", 1, entries={"params": params, "v:pw": {"v": ["hunter2-2"]}, "v:n": {"v": 1}})
    write.new_runs += [run, plain_run]
    write.finish = WorkflowFinish("failed", {"out": "hunter2"}, "template said hunter2", 2.0)
    stored = secrets.stored(write)
    assert "hunter2" not in repr(stored)
    assert stored.entries["params"] == handed_off, "secret parameters stay sealed one by one"
    assert is_sealed(stored.entries["v:pw"]) and stored.entries["v:n"] == {"v": 1}
    assert is_sealed(stored.new_runs[0].request) and stored.new_runs[1].request == {"input": {"label": "x"}}
    assert write.new_runs[0].request["input"]["password"] == "hunter2", "the carrier still sends the real input"
    assert write.finish.result == {"out": "********"} and write.finish.error == "template said ********"
    entries, reloaded = WorkflowSecrets.of_entries(sealer, stored.entries)
    assert entries == {"params": params, "v:pw": {"v": ["hunter2-2"]}, "v:n": {"v": 1}}
    assert reloaded is not None and reloaded.values == secrets.values
    assert WorkflowSecrets.of_parameters(None, {"label": "x"}) == ({"label": "x"}, None), "no secrets, no key needed"
