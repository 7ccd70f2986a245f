"""The relational schema (SQLAlchemy Core), shared by every service.

Each table has one owning service (docs/architecture.md, Tables and their writers); the owner is
named in each table's comment. JSON columns are Text holding JSON written by the owner; times
are Unix seconds (float).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# --- scheduler: the registry -------------------------------------------------------------------

packs = sa.Table(
    "packs",
    metadata,
    sa.Column("ref", sa.String(255), primary_key=True),
    sa.Column("label", sa.Text, nullable=False, default=""),
    sa.Column("version", sa.String(64), nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    # The token name of the client that last registered the pack; empty with security off.
    sa.Column("registered_by", sa.String(255), nullable=False, default="", server_default=""),
    comment="owner: scheduler",
)

pack_files = sa.Table(
    "pack_files",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("pack_ref", sa.String(255), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    comment="owner: scheduler; every version of a pack's files, by digest",
)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("ref", sa.String(255), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("label", sa.Text, nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("runner_type", sa.String(32), nullable=False),
    sa.Column("entry_point", sa.Text, nullable=True),
    sa.Column("parameters", sa.Text, nullable=False, default="{}"),
    sa.Column("output", sa.Text, nullable=False, default="{}"),
    sa.Column("timeout", sa.Float, nullable=True),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("workflow_file", sa.Text, nullable=True),
    sa.Column("workflow_yaml", sa.Text, nullable=True),
    sa.Column("pack_digest", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(255), nullable=True, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # True when RegisterPack stored the row (the pack's files declare it), False for CreateAction:
    # re-registering a pack deletes only its own rows that its files no longer declare.
    sa.Column("from_pack_files", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # The token name of the client that last created or changed the action (or registered its pack).
    sa.Column("updated_by", sa.String(255), nullable=False, default="", server_default=""),
    # Its concurrency policy as JSON ({limit, key, on_limit}); NULL when it has none (migration 0012).
    sa.Column("concurrency", sa.Text, nullable=True),
    comment="owner: scheduler",
)

#: Responses of mutating requests that carried a client request_id, so a retry returns the
#: original (services/scheduler/request_log.py); pruned by created_at after ATTUNE_REQUEST_LOG_TTL.
request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("request_id", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(255), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("response", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    comment="owner: scheduler; the stored response of each mutating request with a request_id",
)

#: Client bearer tokens (docs/architecture.md, Authorization): only a token's sha256 is kept, so a
#: token is shown once and never retrievable. A revoked token keeps its row and its name, which
#: records name as who requested or changed them.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False, default=""),
    sa.Column("revoked_at", sa.Float, nullable=True),
    comment="owner: scheduler; client bearer tokens, hashed",
)

#: Worker liveness shared by every scheduler replica (services/scheduler/leases.py): the replica
#: holding a worker's stream renews its lease while the stream is open; any replica
#: abandons a worker's executions only once its lease has expired (ATTUNE_WORKER_GRACE).
worker_leases = sa.Table(
    "worker_leases",
    metadata,
    sa.Column("worker_id", sa.String(255), primary_key=True),
    sa.Column("scheduler_id", sa.String(64), nullable=False),
    # One more at each connection: a renewal at an older generation comes from a stale stream.
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("runtimes", sa.Text, nullable=False, default="[]"),
    sa.Column("connected_at", sa.Float, nullable=False),
    sa.Column("renewed_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    comment="owner: scheduler; a lease per worker, renewed through the replica holding its stream",
)

# --- scheduler + completion: executions -------------------------------------------------------

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("action_ref", sa.String(255), nullable=False),
    sa.Column("runner_type", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False, default="{}"),
    sa.Column("secret_names", sa.Text, nullable=False, default="[]"),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("parent_id", sa.String(32), nullable=True),
    sa.Column("workflow_execution_id", sa.String(32), nullable=True),
    sa.Column("task_name", sa.String(255), nullable=True),
    sa.Column("task_run", sa.Integer, nullable=True),
    sa.Column("item_index", sa.Integer, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=True),
    sa.Column("depth", sa.Integer, nullable=False, default=0),
    sa.Column("worker_id", sa.String(255), nullable=True),
    sa.Column("request_id", sa.String(255), nullable=True, unique=True),
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.Column("trace_id", sa.String(32), nullable=True),
    sa.Column("timeout", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("scheduled_at", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The token name of the client that requested it; empty for a workflow's children (see the
    # parent) and with security off.
    sa.Column("requested_by", sa.String(255), nullable=False, default="", server_default=""),
    # A re-run (RerunExecution): the execution it re-runs, and for a workflow re-run from some of
    # its tasks, those tasks and their new input as JSON (migration 0013).
    sa.Column("rerun_of", sa.String(32), nullable=True),
    sa.Column("rerun_from", sa.Text, nullable=True),
    # The rendered key of its action's concurrency policy; NULL when the action has none
    # (migration 0012; services/scheduler/concurrency.py).
    sa.Column("concurrency_key", sa.String(255), nullable=True),
    # Each filter of ListExecutions, by id: its first page is a range scan, newest first (ids
    # are time-ordered; migration 0009). The sweep reads active rows by state through the first.
    sa.Index("ix_executions_state_id", "state", "id"),
    sa.Index("ix_executions_action_ref_id", "action_ref", "id"),
    sa.Index("ix_executions_parent_id_id", "parent_id", "id"),
    # The default list, top-level executions newest first, without reading past children
    # (migration 0011).
    sa.Index(
        "ix_executions_top_level_id",
        "id",
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    ),
    # The slots of a concurrency policy: the executions of one key holding or waiting for one
    # (migration 0012). Only rows of actions with a policy have an entry.
    sa.Index(
        "ix_executions_concurrency",
        "action_ref",
        "concurrency_key",
        "state",
        postgresql_where=sa.text("concurrency_key IS NOT NULL"),
        sqlite_where=sa.text("concurrency_key IS NOT NULL"),
    ),
    comment=(
        "owners: scheduler (requested, scheduling, scheduled, running, canceling) and "
        "completion (terminal states, result, error)"
    ),
)

#: What running actions wrote to stdout and stderr, in chunks as the workers sent them
#: (docs/operations.md, Live output): a chunk re-sent after a reconnect has the same key, so it is
#: stored once. Purged with its execution.
execution_logs = sa.Table(
    "execution_logs",
    metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stream", sa.String(8), nullable=False),
    sa.Column("written_at", sa.Float, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    comment="owner: scheduler; each execution's output, by (execution_id, seq)",
)

# --- completion: outcomes of workflow children waiting to reach the coordinator ----------------

outcome_outbox = sa.Table(
    "outcome_outbox",
    metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("workflow_execution_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # The completion replica forwarding it (its `service_leases` id); another replica takes the
    # row over only once that lease has expired. NULL: written before migration 0008.
    sa.Column("owner", sa.String(64), nullable=True),
    comment="owner: completion; deleted once the coordinator acknowledges the outcome",
)

# --- workflow-coordinator -----------------------------------------------------------------------

workflow_definitions = sa.Table(
    "workflow_definitions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("compiled", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    comment="owner: coordinator; one compiled definition per content hash",
)

workflow_executions = sa.Table(
    "workflow_executions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("action_ref", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("definition_digest", sa.String(64), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False, default=0),
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("finish_reported", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    # The coordinator replica that committed the finish and reports the result (its
    # `service_leases` id); taken over only once that lease has expired. NULL before 0008.
    sa.Column("result_owner", sa.String(64), nullable=True),
    comment="owner: coordinator; `version` is compare-and-set while an event is applied",
)

#: Finished workflows whose result the completion service has not acknowledged yet: the
#: coordinator's outbox of results. The partial index holds only those rows (the sweep of
#: carrier.py reads them often; the history of reported workflows grows without bound). A query
#: using it repeats the predicate as written: SQLite matches it term by term.
WORKFLOW_RESULT_UNREPORTED = sa.and_(
    workflow_executions.c.finish_reported.is_(False), workflow_executions.c.finished_at.is_not(None)
)
sa.Index(
    "ix_workflow_executions_unreported",
    workflow_executions.c.finished_at,
    postgresql_where=WORKFLOW_RESULT_UNREPORTED,
    sqlite_where=WORKFLOW_RESULT_UNREPORTED,
)

workflow_state_entries = sa.Table(
    "workflow_state_entries",
    metadata,
    sa.Column("workflow_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    comment="owner: coordinator; the engine's state as entries, only changed ones written per event",
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("workflow_id", sa.String(32), primary_key=True),
    sa.Column("run_key", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("task_name", sa.String(255), nullable=False),
    sa.Column("run", sa.Integer, nullable=False),
    sa.Column("item_index", sa.Integer, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("action_ref", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("child_execution_id", sa.String(32), nullable=True),
    sa.Column("dispatched", sa.Boolean, nullable=False, default=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    # The coordinator replica carrying out the run's pending command (its child request, or a
    # cancel committed after dispatch); taken over only once that replica's lease has expired.
    # NULL before migration 0008.
    sa.Column("owner", sa.String(64), nullable=True),
    comment="owner: coordinator; unique key per task run makes advancement exactly-once",
)

#: Task runs with a command still to carry out: a child to request, or a cancel to deliver (the
#: coordinator's outbox of task runs). Its partial index holds only those rows, like
#: `ix_workflow_executions_unreported` (ended task runs are never deleted).
TASK_RUN_COMMAND_PENDING = sa.or_(
    task_runs.c.dispatched.is_(False),
    sa.and_(task_runs.c.cancel_requested.is_(True), task_runs.c.finished_at.is_(None)),
)
sa.Index(
    "ix_task_runs_outbox",
    task_runs.c.started_at,
    postgresql_where=TASK_RUN_COMMAND_PENDING,
    sqlite_where=TASK_RUN_COMMAND_PENDING,
)

#: One lease per running replica of a service that owns pending work (attune.storage.leases):
#: renewed every third of ATTUNE_LEASE_TIME, deleted at a clean stop. Another replica takes over
#: a replica's outbox rows only once its lease has expired or is gone (migration 0008).
service_leases = sa.Table(
    "service_leases",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("replica_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    comment="owners: coordinator and completion, each its own kind's rows",
)

#: One row counting registry writes (migration 0014): every write to packs or actions adds one in
#: its transaction, and each scheduler replica's action cache is forgotten when it moves.
registry_generation = sa.Table(
    "registry_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    comment="owner: scheduler; counts registry writes, read by every replica's action cache",
)

workflow_timers = sa.Table(
    "workflow_timers",
    metadata,
    sa.Column("workflow_id", sa.String(32), primary_key=True),
    sa.Column("timer_id", sa.Text, primary_key=True),
    sa.Column("fire_at", sa.Float, nullable=False, index=True),
    sa.Column("purpose", sa.String(32), nullable=False, default=""),
    comment="owner: coordinator; durable timers for retry delays, task delays and timeouts",
)
