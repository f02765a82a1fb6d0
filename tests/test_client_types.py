"""The Python client's types (``atelier/client_types.py``) say what the API answers: each
``TypedDict`` has exactly the properties of its schema in the served OpenAPI document, each
of the same type (nullable where the schema allows null, a nested ``TypedDict`` where the
schema refers to another model).

Fast tier: the document of the app in this process."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

from atelier import client_types
from tests.conftest import InProcessApi
from tests.test_contract import served_document

# Each answer type and the component schema it mirrors (api/schemas.py).
MIRRORS = {
    "Job": "JobOut",
    "Progress": "ProgressOut",
    "Output": "OutputOut",
    "JobErrorInfo": "ErrorOut",
    "Model": "ModelOut",
    "ModelAncestor": "ModelAncestorOut",
    "Dataset": "DatasetOut",
    "Comparison": "JobComparison",
    "ComparedRun": "ComparedRun",
    "MetricPoint": "MetricPoint",
    "Sweep": "SweepOut",
    "SweepTrial": "SweepTrialOut",
    "SweepSummary": "SweepSummary",
    "EarlyStopping": "EarlyStopping",
}
SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def python_type(hint: Any) -> str:
    """An annotation in the words of ``schema_type``: ``string``, ``integer | null``,
    ``array[Output]``, ``object[number]``, ``object``."""
    if get_origin(hint) in (Union, types.UnionType):
        return " | ".join(python_type(arg) for arg in get_args(hint))
    if hint is type(None):
        return "null"
    if is_typeddict(hint):
        return str(MIRRORS[hint.__name__])
    if get_origin(hint) is list:
        return f"array[{python_type(get_args(hint)[0])}]"
    if get_origin(hint) is dict:
        value = get_args(hint)[1]
        return "object" if value is Any else f"object[{python_type(value)}]"
    return SCALARS[hint]


def schema_type(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A property's schema in the same words; an enum (JobStatus, WebhookEvent) is a string,
    a date-time too, and another model is its name."""
    if "anyOf" in schema:
        return " | ".join(schema_type(option, components) for option in schema["anyOf"])
    if "$ref" in schema:
        target = components[schema["$ref"].rsplit("/", 1)[-1]]
        return "string" if target.get("type") == "string" else str(target["title"])
    if schema.get("type") == "array":
        return f"array[{schema_type(schema['items'], components)}]"
    if schema.get("type") == "object":
        values = schema.get("additionalProperties", True)
        if values in (True, {}):  # dict[str, Any]
            return "object"
        return f"object[{schema_type(values, components)}]"
    return str(schema["type"])


def component(components: dict[str, Any], name: str) -> dict[str, Any]:
    """A model's schema by its title: its own (``JobOut.1a2b``) if the document has one,
    else its copy within another's (``JobOut.1a2b.ProgressOut``); the copies differ only in
    where their references point."""
    found = sorted(
        (key for key, schema in components.items() if schema.get("title") == name),
        key=lambda key: key.count("."),
    )
    assert found, f"no {name} in the document"
    return dict(components[found[0]])


def test_every_answer_type_has_its_schemas_properties_and_types(
    inprocess_api: InProcessApi,
) -> None:
    components = served_document(inprocess_api)["components"]["schemas"]
    drift = []
    for type_name, schema_name in MIRRORS.items():
        hints = get_type_hints(getattr(client_types, type_name))
        properties = component(components, schema_name)["properties"]
        for key in sorted(hints.keys() | properties.keys()):
            if key not in properties:
                drift.append(f"{type_name}.{key}: not in {schema_name}")
            elif key not in hints:
                drift.append(f"{type_name} lacks {key} ({schema_name})")
            elif python_type(hints[key]) != schema_type(properties[key], components):
                found = schema_type(properties[key], components)
                drift.append(f"{type_name}.{key}: {python_type(hints[key])}, schema {found}")
    assert drift == [], "\n".join(drift)


def test_the_answer_types_are_the_clients() -> None:
    """Every ``TypedDict`` the client answers with is checked (``Event`` is a server-sent
    event, not a JSON body: ``parse_sse`` makes it)."""
    typed = {
        name
        for name, value in vars(client_types).items()
        if is_typeddict(value) and value.__module__ == client_types.__name__
    }
    assert typed == {*MIRRORS, "Event"}
