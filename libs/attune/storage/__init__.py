"""Persistence shared by the services: schema, the session helper and migrations."""

from attune.storage.database import (
    Database,
    dialect_insert,
    is_unavailable,
    is_unique_violation,
    retry_while_unavailable,
)
from attune.storage.migrate import upgrade

__all__ = ["Database", "dialect_insert", "is_unavailable", "is_unique_violation", "retry_while_unavailable", "upgrade"]
