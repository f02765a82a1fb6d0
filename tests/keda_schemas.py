"""JSON schemas for the KEDA objects deploy/k8s uses, written from KEDA's documentation
(ScaledObject, ScaledJob and TriggerAuthentication specs; the `redis` and `redis-sentinel`
list scalers). kubernetes-validate knows only Kubernetes' own kinds, and KEDA's CRDs are
not vendored here: these cover every field the manifests set, refuse any other (a typo
such as `scalingStrategy: {stratgy: …}` is silently ignored by a cluster), and know the
allowed values. A ScaledJob's `jobTargetRef` is a batch/v1 JobSpec, which the test checks
with kubernetes-validate instead.
"""

from __future__ import annotations

from typing import Any

NUMBER_STRING = {"type": "string", "pattern": r"^[0-9]+$"}
COMMON_LIST_METADATA = {
    "listName": {"type": "string"},
    "listLength": NUMBER_STRING,
    "activationListLength": NUMBER_STRING,
    "databaseIndex": NUMBER_STRING,
    "enableTLS": {"enum": ["true", "false"]},
}


def _trigger(kind: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "metadata"],
        "properties": {
            "type": {"const": kind},
            "authenticationRef": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "required": ["listName", "listLength", *address],
                "properties": {**COMMON_LIST_METADATA, **address},
            },
        },
    }


TRIGGER = {
    "oneOf": [
        _trigger("redis", {"address": {"type": "string", "pattern": r"^[^,\s]+:[0-9]+$"}}),
        _trigger(
            "redis-sentinel",
            {
                "addresses": {"type": "string", "pattern": r"^[^,\s]+:[0-9]+(,[^,\s]+:[0-9]+)*$"},
                "sentinelMaster": {"type": "string"},
            },
        ),
    ]
}
METADATA = {"type": "object", "required": ["name"]}


def _kind(kind: str, spec: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": required,
                "properties": spec,
            },
        },
    }


COUNT = {"type": "integer", "minimum": 0}
SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _kind(
        "ScaledObject",
        {
            "scaleTargetRef": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
            },
            "minReplicaCount": COUNT,
            "maxReplicaCount": COUNT,
            "cooldownPeriod": COUNT,
            "pollingInterval": COUNT,
            "triggers": {"type": "array", "minItems": 1, "items": TRIGGER},
        },
        ["scaleTargetRef", "triggers"],
    ),
    "ScaledJob": _kind(
        "ScaledJob",
        {
            "jobTargetRef": {"type": "object"},  # a JobSpec: kubernetes-validate checks it
            "maxReplicaCount": COUNT,
            "pollingInterval": COUNT,
            "successfulJobsHistoryLimit": COUNT,
            "failedJobsHistoryLimit": COUNT,
            "scalingStrategy": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "strategy": {"enum": ["default", "accurate", "eager", "custom"]},
                    "customPendingPodConditions": {"type": "array", "items": {"type": "string"}},
                    "multipleScalersCalculation": {"enum": ["max", "min", "avg", "sum"]},
                },
            },
            "triggers": {"type": "array", "minItems": 1, "items": TRIGGER},
        },
        ["jobTargetRef", "triggers"],
    ),
    "TriggerAuthentication": _kind(
        "TriggerAuthentication",
        {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["parameter", "name", "key"],
                    "properties": {
                        "parameter": {
                            "enum": [
                                "username",
                                "password",
                                "sentinelUsername",
                                "sentinelPassword",
                                "sentinelMaster",
                            ]
                        },
                        "name": {"type": "string"},
                        "key": {"type": "string"},
                    },
                },
            }
        },
        ["secretTargetRef"],
    ),
}
