"""Structural-schema defaulting, as the API server does it, for objects it may not have defaulted.

Objects stored before a default existed, and test servers, reach the operator without the
schema's defaults; applying them here keeps the builders free of fallback logic.
"""

from __future__ import annotations

import copy
from typing import Any


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Return `value` with every missing property that has a `default` filled in, recursively.

    Like Kubernetes, a defaulted object is itself defaulted further, so `default: {}` on an
    object pulls in the defaults of its properties.
    """
    if isinstance(value, dict) and "properties" in schema:
        result = dict(value)
        for key, subschema in schema["properties"].items():
            if key not in result and "default" in subschema:
                result[key] = copy.deepcopy(subschema["default"])
            if key in result:
                result[key] = apply_defaults(subschema, result[key])
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value
