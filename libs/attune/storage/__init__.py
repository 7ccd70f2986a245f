"""Persistence shared by the services: schema, the session helper and migrations."""

from attune.storage.database import Database, is_unique_violation
from attune.storage.migrate import upgrade

__all__ = ["Database", "is_unique_violation", "upgrade"]
