"""A 2,000-task chain of runs that end at once, registered and run through the `attune` script.

Each task has an empty ``with_items``, so the whole chain ends inside the event that starts the
workflow; before the engine queued ended runs, that recursed once per task and failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli.e2e import attune
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

CHAIN = 2000


def _write_pack(folder: Path) -> None:
    tasks: list[dict[str, object]] = []
    for i in range(CHAIN - 1):
        nxt = f"t{i + 1}" if i + 2 < CHAIN else "say"
        tasks.append(
            {
                "name": f"t{i}",
                "action": "core.echo",
                "with_items": "{{ [] }}",
                "next": [{"when": "{{ succeeded() }}", "publish": [{"reached": i}], "do": nxt}],
            }
        )
    tasks.append({"name": "say", "action": "core.echo", "input": {"message": "reached {{ vars.reached }}"}})
    workflow = {
        "ref": "longchain.chain",
        "label": "A long chain",
        "tasks": tasks,
        "output_map": {"reached": "{{ vars.reached }}", "said": "{{ task.say.stdout | trim }}"},
    }
    (folder / "workflows").mkdir(parents=True)
    (folder / "pack.yaml").write_text("ref: longchain\nlabel: Long chain\nversion: '1.0'\ndescription: test\n")
    (folder / "workflows" / "chain.workflow.yaml").write_text(yaml.safe_dump(workflow, sort_keys=False))


async def test_a_2000_task_chain_completes_through_attune_run(ready_cluster: Cluster, tmp_path: Path) -> None:
    env = ready_cluster.cli_env()
    _write_pack(tmp_path / "longchain")
    registered = await attune("pack", "register", str(tmp_path / "longchain"), env=env)
    assert registered.code == 0, registered.stderr
    outcome = await attune("run", "longchain.chain", "--wait", "--output", "json", env=env, timeout=120)
    assert outcome.code == 0, outcome.stderr
    doc = outcome.json()
    assert doc["state"] == "succeeded", doc["error"]
    assert doc["result"] == {"succeeded": True, "reached": CHAIN - 2, "said": f"reached {CHAIN - 2}"}
    assert [(c["task"], c["state"]) for c in doc["children"]] == [("say", "succeeded")]
