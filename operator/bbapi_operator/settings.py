"""Operator settings, read from `BBAPI_*` environment variables like every other bbapi process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_IMAGE = "ghcr.io/bbapi/bbapi:0.1.0"


class OperatorSettings(BaseSettings):
    """Knobs of the operator process; the chart sets them as env vars."""

    model_config = SettingsConfigDict(env_prefix="BBAPI_", extra="ignore")

    watch_namespace: str = Field(
        "", description="namespace to watch; empty watches all namespaces")
    default_image: str = Field(
        DEFAULT_IMAGE, description="image for BuildBuddyAPI objects that do not set spec.image; "
        "the chart passes the operator's own image so one image runs everything")
    poll_seconds: float = Field(
        5.0, gt=0, description="how often to re-check a CAS membership change in flight")
    resync_seconds: float = Field(
        300.0, gt=0, description="how often a settled object is reconciled anyway, in case a watch missed a change")
    retry_seconds: float = Field(
        15.0, gt=0, description="delay before retrying a reconcile that failed")
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="timeout of one Kubernetes API or gateway status request")
    post_events: bool = Field(
        True, description="post Kubernetes Events for the operator's log messages")
    events_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="lowest log level posted as a Kubernetes Event")
    health_port: int = Field(
        8080, description="port of the operator's /healthz liveness endpoint")
    workers: int = Field(
        4, ge=1, description="threads that run reconciles of different objects in parallel")
