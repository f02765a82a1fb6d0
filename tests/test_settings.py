from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml

from atelier.api.app import create_app
from atelier.shared.auth import ApiKeyStore
from atelier.shared.settings import Settings
from tests.conftest import url_of


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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("1", True), ("true", True), ("Yes", True), ("ON", True), (" on ", True)],
        *[("0", False), ("false", False), ("no", False), ("Off", False)],
    ],
)
def test_booleans_accept_the_usual_words(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"ATELIER_MIXED_PRECISION": raw, "ATELIER_EXIT_AFTER_JOB": raw})
    assert settings.mixed_precision is expected
    assert settings.exit_after_job is expected


def test_a_bad_boolean_names_the_variable_and_the_words() -> None:
    with pytest.raises(ValueError, match=r"ATELIER_MIXED_PRECISION must be a boolean.*on/off.*'2'"):
        Settings.from_env({"ATELIER_MIXED_PRECISION": "2"})


def test_a_bad_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="ATELIER_MODEL_CACHE_SIZE must be an integer, not 'four'"):
        Settings.from_env({"ATELIER_MODEL_CACHE_SIZE": "four"})
    with pytest.raises(ValueError, match="ATELIER_LEASE_SECONDS must be a number"):
        Settings.from_env({"ATELIER_LEASE_SECONDS": "soon"})


def test_choices_are_checked_and_matched_without_regard_to_case() -> None:
    settings = Settings.from_env({"ATELIER_LOG_LEVEL": "debug", "ATELIER_LOG_FORMAT": "TEXT"})
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")
    with pytest.raises(ValueError, match="ATELIER_LOG_FORMAT must be one of json, text, not 'xml'"):
        Settings.from_env({"ATELIER_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="ATELIER_LOG_LEVEL must be one of DEBUG, INFO"):
        Settings.from_env({"ATELIER_LOG_LEVEL": "loud"})


def test_values_set_in_code_obey_the_same_rules() -> None:
    with pytest.raises(ValueError, match="ATELIER_STORAGE must be one of local, s3"):
        Settings(storage="ftp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ATELIER_GPUS must be auto, none or a comma list"):
        Settings.from_env({"ATELIER_GPUS": "all"})
    assert Settings.from_env({"ATELIER_GPUS": "0, 2"}).gpus == "0, 2"


def test_every_field_has_a_parser_and_round_trips_through_the_environment() -> None:
    """A new field of a type the loader cannot read fails here, not in production."""
    changed = Settings(
        mixed_precision=True,
        exit_after_job=True,
        log_level="WARNING",
        log_format="text",
        gpus="none",
        lease_seconds=3.5,
        data_dir=Path("/data"),
    )
    assert Settings.from_env(changed.to_env()) == changed
    assert changed.to_env()["ATELIER_EXIT_AFTER_JOB"] == "true"


def test_every_setting_is_read_by_the_code() -> None:
    """A documented setting that nothing reads lies to the operator."""
    root = Path(__file__).resolve().parent.parent
    sources = [
        path.read_text()
        for folder in ("api", "workers", "shared", "cli")
        for path in (root / folder).rglob("*.py")
    ]
    code = "\n".join(sources)
    unread = [name for name in Settings.model_fields if f".{name}" not in code]
    assert unread == []


def test_list_page_max_bounds_every_list_call_and_the_openapi_document(
    redis_client: redis.Redis,
) -> None:
    settings = Settings(
        redis_url=url_of(redis_client),
        list_page_max=5,
        log_format="text",
    )
    key = ApiKeyStore(redis_client).create("alice", "test")
    http = create_app(settings).test_client()
    auth = {"Authorization": f"Bearer {key}"}
    for path in ("/v1/jobs", "/v1/models"):
        assert http.get(f"{path}?limit=5", headers=auth).status_code == 200
        refused = http.get(f"{path}?limit=6", headers=auth)
        assert refused.status_code == 422
        assert refused.mimetype == "application/problem+json"
        problem = refused.get_json()
        assert problem["errors"] == [
            {
                "field": "limit",
                "message": "Input should be less than or equal to 5 (allowed: 1 <= limit <= 5)",
            }
        ]
    document = http.get("/v1/openapi.json").get_json()
    bounds = [
        parameter["schema"]["maximum"]
        for path in ("/v1/jobs", "/v1/models")
        for parameter in document["paths"][path]["get"]["parameters"]
        if parameter["name"] == "limit"
    ]
    assert bounds == [5, 5]


def _deploy_environments(root: Path) -> dict[str, dict[str, str]]:
    """The ATELIER_* values that .env.example, docker-compose and the manifests set."""
    example = (root / ".env.example").read_text().splitlines()
    found = {".env.example": dict(line.split("=", 1) for line in example if "=" in line)}
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        found[f"compose {name}"] = service.get("environment") or {}
    for path in sorted((root / "deploy" / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "ConfigMap":
                found[path.name] = document["data"]
    return {
        where: {k: str(v) for k, v in env.items() if k.startswith("ATELIER_")}
        for where, env in found.items()
    }


def test_the_deploy_files_values_load() -> None:
    for where, env in _deploy_environments(Path(__file__).resolve().parent.parent).items():
        try:
            Settings.from_env(env)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}")


def test_old_switch_values_still_load() -> None:
    """Deployments written when switches were `on`/`off` and `0`/`1` keep working."""
    old = Settings.from_env({"ATELIER_MIXED_PRECISION": "on", "ATELIER_EXIT_AFTER_JOB": "0"})
    assert old.mixed_precision is True and old.exit_after_job is False


def test_only_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Settings(...)`` is the defaults and the code's values: a stray variable in a test's
    or a child's environment changes nothing; names count upper-case only."""
    monkeypatch.setenv("ATELIER_MODEL_CACHE_SIZE", "9")
    monkeypatch.setenv("atelier_lease_seconds", "1")
    assert Settings().model_cache_size == 4
    assert Settings(lease_seconds=3).replace(log_format="text").model_cache_size == 4
    from_env = Settings.from_env()
    assert (from_env.model_cache_size, from_env.lease_seconds) == (9, 15.0)


def test_every_bad_variable_is_named_at_once_and_no_secret_is_echoed() -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env({"ATELIER_MODEL_CACHE_SIZE": "four", "ATELIER_LEASE_SECONDS": "soon"})
    assert str(caught.value).splitlines() == [
        "ATELIER_MODEL_CACHE_SIZE must be an integer, not 'four'",
        "ATELIER_LEASE_SECONDS must be a number, not 'soon'",
    ]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(ValueError, match="ATELIER_REDIS_URL is not a usable") as caught:
        Settings.from_env({"ATELIER_REDIS_URL": "http://user:hunter2@host:6379/0"})
    assert "hunter2" not in str(caught.value)


def test_values_set_in_code_are_checked_against_their_types() -> None:
    with pytest.raises(ValueError, match="ATELIER_MODEL_CACHE_SIZE must be an integer, not 'x'"):
        Settings(model_cache_size="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ATELIER_API_CONCURRENT_UPLOADS must be 1 or more"):
        Settings().replace(api_concurrent_uploads=0)


def test_the_cli_names_a_bad_variable_without_a_traceback() -> None:
    """What an operator sees from `atelier up` (or any command) with a mistyped variable."""
    from click.testing import CliRunner

    from atelier.cli.main import main

    env = {"ATELIER_MODEL_CACHE_SIZE": "four", "ATELIER_LOG_FORMAT": "xml"}
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 1
    assert "ATELIER_MODEL_CACHE_SIZE must be an integer, not 'four'" in result.output
    assert "ATELIER_LOG_FORMAT must be one of" in result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
