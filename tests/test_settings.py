from __future__ import annotations

from pathlib import Path

import pytest

from atelier.shared.settings import Settings


def test_from_env_reads_prefixed_variables_and_coerces_types() -> None:
    settings = Settings.from_env(
        {
            "ATELIER_REDIS_URL": "redis://r:1/2",
            "ATELIER_MODEL_CACHE_SIZE": "7",
            "ATELIER_PROGRESS_INTERVAL_SECONDS": "0.25",
            "ATELIER_DATA_DIR": "/d",
            "ATELIER_STORAGE": "s3",
            "UNRELATED": "x",
        }
    )
    assert settings.redis_url == "redis://r:1/2"
    assert settings.model_cache_size == 7
    assert settings.progress_interval_seconds == 0.25
    assert settings.data_dir == Path("/d")
    assert settings.storage == "s3"
    assert settings.effective_broker_url == "redis://r:1/2"


def test_to_env_round_trips() -> None:
    settings = Settings(model_cache_size=2, storage="s3", local_storage_dir=Path("/o"))
    assert Settings.from_env(settings.to_env()) == settings


def test_bad_storage_value_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="local"):
        Settings.from_env({"ATELIER_STORAGE": "ftp"})
