"""How an ``ATELIER_*`` string becomes a settings field, and how a bad one is named in the
error (``shared.settings`` holds the fields themselves)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .redis_client import check_url

ENV_PREFIX = "ATELIER_"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def is_host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def env_name(field_name: str) -> str:
    """``redis_url`` -> ``ATELIER_REDIS_URL``."""
    return ENV_PREFIX + field_name.upper()


def parse_bool(raw: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``, in any case."""
    word = raw.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"not a boolean: {raw!r}")
    return word in TRUE_WORDS


# How an environment string becomes each plain field type, and how an error names it.
_PARSERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    str: (str, "a string"),
    int: (lambda raw: int(raw.strip()), "an integer"),
    float: (lambda raw: float(raw.strip()), "a number"),
    bool: (parse_bool, "a boolean (1/0, true/false, yes/no, on/off)"),
    Path: (Path, "a path"),
}


def coerce(name: str, annotation: Any, raw: str) -> Any:
    """``raw`` as the field's annotated type; a ``Literal`` matches case-insensitively."""
    if get_origin(annotation) is Literal:
        by_folded = {str(choice).lower(): choice for choice in get_args(annotation)}
        if raw.strip().lower() not in by_folded:
            raise ValueError(must_be(name, one_of(annotation), raw))
        return by_folded[raw.strip().lower()]
    if annotation not in _PARSERS:
        raise TypeError(f"Settings.{name}: no parser for its type {annotation!r}")
    parse, meaning = _PARSERS[annotation]
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(must_be(name, meaning, raw)) from None


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def one_of(annotation: Any) -> str:
    return "one of " + ", ".join(str(choice) for choice in get_args(annotation))


def check_redis_url(name: str, url: str) -> None:
    """The URL itself stays out of the message: it may carry a password."""
    try:
        check_url(url)
    except ValueError as exc:
        raise ValueError(f"{env_name(name)} is not a usable Redis URL: {exc}") from None


def must_be(name: str, allowed: str, value: object) -> str:
    return f"{env_name(name)} must be {allowed}, not {value!r}"
