"""`attune token create|list|revoke` and the CLI's token, against the real services with TLS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from attune.packs import bundled_pack_path
from attune.security.certificates import init_material
from tests.security.authz_cluster import ADMIN_TOKEN, SecureCluster, start_secure_cluster


@pytest.fixture
async def cluster(sqlite_url: str, tmp_path: Path) -> AsyncIterator[SecureCluster]:
    init_material(tmp_path / "tls")
    running = await start_secure_cluster(sqlite_url, tmp_path / "tls", tmp_path)
    try:
        yield running
    finally:
        await running.stop()


async def attune(cluster: SecureCluster, home: Path, *args: str, token: str = "") -> tuple[int, str, str]:
    """Runs the CLI as a process (the servers keep serving in this loop); exit status, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env |= {"ATTUNE_HOME": str(home), "ATTUNE_TLS_DIR": cluster.settings.tls_dir}
    env |= {"ATTUNE_ADDRESS": cluster.addresses["scheduler"], "ATTUNE_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "attune_services.cli", *args, env=env, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tokens_are_created_once_listed_and_revoked(cluster: SecureCluster, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.token").write_text(ADMIN_TOKEN)  # what `attune up` leaves: found without flags
    code, out, err = await attune(cluster, home, "token", "create", "ci", "--role", "operator", "--output", "json")
    assert code == 0, err
    created = json.loads(out)
    assert list(created) == ["name", "role", "token"] and created["name"] == "ci" and created["role"] == "operator"
    assert created["token"].startswith("attune_")

    code, out, err = await attune(cluster, home, "pack", "register", str(bundled_pack_path("core")))
    assert code == 0, err
    code, out, err = await attune(cluster, home, "run", "core.noop", "-o", "json", token=created["token"])
    assert code == 0, err
    code, out, err = await attune(cluster, home, "execution", "get", json.loads(out)["id"], token=created["token"])
    assert code == 0 and "requested by: ci" in out.splitlines(), (out, err)
    code, out, err = await attune(cluster, home, "token", "list", token=created["token"])
    assert code == 1 and "requires role admin or higher; token 'ci' has role operator" in err

    code, out, err = await attune(cluster, home, "token", "list")
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["admin", "admin"], ["ci", "operator"]]
    assert created["token"] not in out

    code, out, err = await attune(cluster, home, "token", "revoke", "ci")
    assert (code, out.strip()) == (0, "revoked token ci"), err
    code, out, err = await attune(cluster, home, "execution", "list", token=created["token"])
    assert code == 1 and "unknown or revoked token" in err


async def test_without_a_token_the_cli_says_what_is_missing(cluster: SecureCluster, tmp_path: Path) -> None:
    home = tmp_path / "empty-home"  # no admin.token here (the cluster's lies in tmp_path)
    home.mkdir()
    code, _, err = await attune(cluster, home, "execution", "list")
    assert code == 1 and "missing bearer token" in err
