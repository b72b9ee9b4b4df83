"""Handlers for `kopf run -m bbapi_operator.handlers` (Tilt's local mode): importing this
module registers everything in kopf's default registry with settings from the environment."""

from __future__ import annotations

import kopf

from bbapi_operator.controller import register
from bbapi_operator.settings import OperatorSettings

register(kopf.get_default_registry(), OperatorSettings())
