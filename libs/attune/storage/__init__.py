"""Persistence shared by the services: schema, the session helper and migrations.

Migrations are imported from ``attune.storage.migrate`` itself, not re-exported here, so that
``python -m attune.storage.migrate`` does not find its module already imported."""

from attune.storage.database import (
    Database,
    dialect_insert,
    is_unavailable,
    is_unique_violation,
    log_failed_round,
    retry_while_unavailable,
)

__all__ = [
    "Database",
    "dialect_insert",
    "is_unavailable",
    "is_unique_violation",
    "log_failed_round",
    "retry_while_unavailable",
]
