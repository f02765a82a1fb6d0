"""Where the settings meet the environment: the ``ATELIER_*`` names, the variables read from
a given mapping (pydantic-settings' own source), and a failed validation told as one line a
variable (``shared.settings`` holds the fields themselves)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import EnvSettingsSource

from .redis_client import check_url

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

ENV_PREFIX = "ATELIER_"
BOOLEAN_WORDS = "1/0, true/false, yes/no, on/off"

# What an error of each pydantic type says a variable must be (its value is quoted after it:
# these fields are numbers, switches and choices, never secrets).
_MEANINGS = {
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": f"a boolean ({BOOLEAN_WORDS})",
    "bool_type": f"a boolean ({BOOLEAN_WORDS})",
}


def env_name(field_name: str) -> str:
    """``redis_url`` -> ``ATELIER_REDIS_URL``."""
    return ENV_PREFIX + field_name.upper()


class Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` or a
    test's dict) rather than always ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # It matches names in any case (lower-cased); ours are upper-case, and only those count.
        self.env_vars = {name.lower(): value for name, value in environ.items() if name.isupper()}


def is_host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def one_of(annotation: Any) -> str:
    return "one of " + ", ".join(str(choice) for choice in get_args(annotation))


def as_written(annotation: Any, value: object) -> object:
    """What an environment string may hold beyond pydantic's own reading: blanks around a
    switch (``" on "``), a choice in any case (``debug``); validation judges the result."""
    if not isinstance(value, str):
        return value
    if annotation is bool:
        return value.strip()
    if get_origin(annotation) is Literal:
        by_folded = {str(choice).lower(): choice for choice in get_args(annotation)}
        return by_folded.get(value.strip().lower(), value)
    return value


def check_redis_url(name: str, url: str) -> None:
    """The URL itself stays out of the message: it may carry a password."""
    try:
        check_url(url)
    except ValueError as exc:
        raise ValueError(f"{env_name(name)} is not a usable Redis URL: {exc}") from None


def must_be(name: str, allowed: str, value: object) -> str:
    return f"{env_name(name)} must be {allowed}, not {value!r}"


def explain(error: ValidationError, annotations: Mapping[str, Any]) -> str:
    """Every failure as one line naming its variable (pydantic's own text names the field,
    quotes every input and links its docs)."""
    return "\n".join(_line(detail, annotations) for detail in error.errors(include_url=False))


def _line(detail: ErrorDetails, annotations: Mapping[str, Any]) -> str:
    if detail["type"] == "value_error":  # the model's own checks, which name their variable
        return str(detail.get("ctx", {}).get("error", detail["msg"]))
    name = str(detail["loc"][0]) if detail["loc"] else ""
    if detail["type"] == "extra_forbidden":
        return f"Settings has no field {name!r}"
    if detail["type"] == "literal_error":
        return must_be(name, one_of(annotations[name]), detail["input"])
    if detail["type"] in _MEANINGS:
        return must_be(name, _MEANINGS[detail["type"]], detail["input"])
    return f"{env_name(name)}: {detail['msg']}"  # a type no variable is read as; no value
