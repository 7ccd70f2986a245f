"""``attune bench faults``: the services under a mixed load while faults are injected one at a
time (a SIGKILL of each service, database restarts and a stop, a SIGKILL of one of two replicas
of each service), counting what was lost, stuck, wrong or run twice and how long recovery took.

The database faults need a PostgreSQL of the benchmark's own (`initdb` and `pg_ctl` on this
host); without one they are skipped, and said so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from attune import eventloop
from attune_services.bench.faults.catalog import FAULT_NAMES, FAULTS
from attune_services.bench.faults.report import faults_table
from attune_services.bench.faults.runner import FaultDatabases, FaultOptions, run_fault
from attune_services.bench.faults.score import FaultFigures, total
from attune_services.bench.faults.scratch_postgres import ScratchPostgres, unavailable_reason
from attune_services.cli.launcher import LaunchError

__all__ = ["FAULT_NAMES", "FaultOptions", "fault_options", "fault_suite", "faults_table"]


def fault_suite(
    database_url: str, names: Sequence[str], options: FaultOptions, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Runs the faults named (all when empty) in catalog order; returns ``faults`` (one object
    per fault run), ``total`` (over the faults, the ``none`` baseline left out), ``skipped`` (the
    faults not run, each with why) and, when a fault could not be run to its end, ``failed``
    (each with the first line of its error)."""
    chosen = [fault for fault in FAULTS if not names or fault.name in names]
    reason = unavailable_reason()
    postgres: ScratchPostgres | None = None
    if reason is None:
        postgres = ScratchPostgres()
        progress(f"starting the benchmark's own PostgreSQL in {postgres.folder} on port {postgres.port}")
        postgres.start()
    else:
        progress(f"no PostgreSQL of its own ({reason}): the database faults are skipped")
    rows: list[FaultFigures] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    try:
        databases = FaultDatabases(database_url, postgres)
        for fault in chosen:
            if fault.needs_own_database and postgres is None:
                skipped.append({"fault": fault.name, "reason": f"no PostgreSQL of its own: {reason}"})
                continue
            try:
                rows.append(eventloop.run(run_fault(fault, databases, options, progress)))
            except (LaunchError, RuntimeError) as err:  # one fault that cannot run does not stop the rest
                first = str(err).splitlines()[0]
                progress(f"{fault.name}: failed: {err}")
                failed.append({"fault": fault.name, "error": first})
    finally:
        if postgres is not None:
            postgres.destroy()
    control = {fault.name for fault in FAULTS if fault.control}
    faulted = [row for row in rows if row.fault not in control]
    figures = {"faults": [row.as_json() for row in rows], "total": total(faulted), "skipped": skipped}
    return figures | ({"failed": failed} if failed else {})


#: --short: a tenth of the load, long actions of 3 s, and 30 s (plus the worker grace) to settle.
SHORT = FaultOptions(scale=0.1, long_s=3.0, lead_s=1.0, settle_s=30.0)


def fault_options(*, short: bool, scale: float | None, secure: bool, ready_timeout: float) -> FaultOptions:
    """The options of `attune bench faults`: full size, or --short, either times --scale."""
    base = SHORT if short else FaultOptions()
    if scale is not None and not 0 < scale <= 100:
        raise ValueError(f"--scale must be more than 0 and at most 100, got {scale:g}")
    return replace(base, scale=base.scale * (scale or 1.0), secure=secure, ready_timeout=ready_timeout)
