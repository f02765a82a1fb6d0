"""Pages of list calls: ``limit`` is bounded by ``ATELIER_LIST_PAGE_MAX``.

The bound is a setting, so it cannot sit in the query models (they are built at import);
each list view checks it with the same 422 pydantic gives any other bound, and the served
OpenAPI document states it as each ``limit`` parameter's ``maximum``.
"""

from __future__ import annotations

import copy
from typing import Any

from ..shared.errors import ValidationFailed


def checked_limit(limit: int, page_max: int) -> int:
    """``limit``, or a 422 naming the largest page allowed."""
    if limit > page_max:
        message = (
            f"Input should be less than or equal to {page_max} (allowed: 1 <= limit <= {page_max})"
        )
        raise ValidationFailed(f"limit: {message}", errors=[{"field": "limit", "message": message}])
    return limit


def bound_page_limits(document: dict[str, Any], page_max: int) -> dict[str, Any]:
    """A copy of the OpenAPI ``document`` whose query ``limit`` parameters say ``page_max``."""
    bounded = copy.deepcopy(document)
    for operations in bounded.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") == "limit":
                    parameter["schema"]["maximum"] = page_max
    return bounded
