"""`attune secrets rotate` on both stores: what key A sealed is readable under key B alone after."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from attune.config import normalize_database_url
from attune.security.rotation import SEALED_COLUMNS, rotate
from attune.security.sealing import SEALED, Sealer, SecretKey, SecretKeyError, is_sealed, new_key_text
from attune.storage import Database
from attune.storage.schema import executions, task_runs, workflow_state_entries


def _key() -> tuple[str, SecretKey]:
    text = new_key_text()
    return text, SecretKey.from_base64(text, where="test")


async def _store_sealed(db: Database, sealer: Sealer) -> None:
    """One value of each kind the services seal: a parameter, a state entry, a task-run request."""
    params = {"user": "ada", "password": sealer.seal("pw-in-parameters")}
    async with db.write() as conn:
        await conn.execute(
            executions.insert().values(
                id="e1",
                action_ref="p.a",
                runner_type="python",
                state="succeeded",
                parameters=json.dumps(params),
                secret_names='["password"]',
                created_at=1.0,
                updated_at=1.0,
            )
        )
        await conn.execute(
            workflow_state_entries.insert(),
            [
                {"workflow_id": "w1", "key": "params", "value": json.dumps(params)},
                {"workflow_id": "w1", "key": "v:pw", "value": json.dumps(sealer.seal({"v": "pw-in-a-variable"}))},
                {"workflow_id": "w1", "key": "plain", "value": json.dumps({"v": 1})},
            ],
        )
        await conn.execute(
            task_runs.insert().values(
                workflow_id="w1",
                run_key="t:1",
                seq=1,
                task_name="t",
                run=1,
                attempt=1,
                action_ref="p.a",
                state="running",
                request=json.dumps(sealer.seal({"input": {"password": "pw-in-a-request"}})),
                started_at=1.0,
            )
        )


async def _stored_values(db: Database) -> list[object]:
    values = []
    async with db.read() as conn:
        for target in SEALED_COLUMNS:
            column = target.table.c[target.column]
            values += [json.loads(text) for text in (await conn.execute(sa.select(column))).scalars()]
    return values


def _envelopes(value: object) -> list[dict[str, str]]:
    if is_sealed(value):
        return [value]  # type: ignore[list-item]  # is_sealed checked it is a dict
    if isinstance(value, dict):
        return [e for v in value.values() for e in _envelopes(v)]
    if isinstance(value, list):
        return [e for v in value for e in _envelopes(v)]
    return []


async def test_rotation_reseals_every_stored_value_under_the_newest_key(database_url: str) -> None:
    _, a = _key()
    _, b = _key()
    db = Database(normalize_database_url(database_url))
    try:
        await _store_sealed(db, Sealer([a]))
        with pytest.raises(SecretKeyError, match=f"needs secret key '{a.id}'"):
            await rotate(db, Sealer([b]))  # A dropped too early: named, nothing half-done silently
        report = await rotate(db, Sealer([b, a]))
        assert report.resealed == {
            "executions.parameters": 1,
            "workflow_state_entries.value": 2,  # the params entry and the variable
            "task_runs.request": 1,
        }
        values = await _stored_values(db)
        envelopes = [e for v in values for e in _envelopes(v)]
        assert len(envelopes) == 4
        assert {e[SEALED].split(":")[1] for e in envelopes} == {b.id}
        only_b = Sealer([b])
        opened = json.dumps([only_b.open_all(v) for v in values])
        for secret in ("pw-in-parameters", "pw-in-a-variable", "pw-in-a-request"):
            assert secret in opened
        assert (await rotate(db, Sealer([b]))).total == 0, "a second rotation has nothing left to do"
    finally:
        await db.close()


async def test_the_rotate_command_reports_per_column(database_url: str) -> None:
    a_text, a = _key()
    b_text, _ = _key()
    db = Database(normalize_database_url(database_url))
    try:
        await _store_sealed(db, Sealer([a]))
    finally:
        await db.close()
    env = {"ATTUNE_SECRET_KEY": f"{b_text},{a_text}", "ATTUNE_DATABASE_URL": database_url, "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "attune_services.cli", "secrets", "rotate", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["resealed"] == {"executions.parameters": 1, "workflow_state_entries.value": 2, "task_runs.request": 1}
    missing = subprocess.run(
        [sys.executable, "-m", "attune_services.cli", "secrets", "rotate"],
        env={**env, "ATTUNE_SECRET_KEY": "", "ATTUNE_HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "no secret key is configured; set ATTUNE_SECRET_KEY" in missing.stderr
