"""Settings come from ATTUNE_* variables with sensible defaults."""

from __future__ import annotations

import pytest

from attune.config import ConfigError, Settings


def test_defaults_use_embedded_sqlite() -> None:
    settings = Settings.from_env({"ATTUNE_HOME": "/tmp/attune-home-x"})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.schedule_timeout == 60.0
    assert settings.max_message_bytes == 4 * 1024 * 1024


def test_values_are_typed_and_urls_normalised() -> None:
    settings = Settings.from_env(
        {"ATTUNE_DATABASE_URL": "postgresql://u@h/db", "ATTUNE_WORKER_GRACE": "0.5", "ATTUNE_WORKER_CAPACITY": "3"}
    )
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.worker_grace == 0.5
    assert settings.worker_capacity == 3


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ATTUNE_WORKER_CAPACITY"):
        Settings.from_env({"ATTUNE_WORKER_CAPACITY": "many"})
