"""Typed settings shared by every service, and the bridge that turns them into CLI flags.

Each service has one settings class. Every field is readable from a `BBAPI_<FIELD>` environment
variable and from a `--field-name` flag; flags win over the environment, which wins over the
default. The flags are generated from the fields so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BBAPI_"


class CommonSettings(BaseSettings):
    """Settings every process understands."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="log verbosity")
    tracing_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="where OpenTelemetry spans go: none, console (stderr) or otlp")
    otlp_endpoint: str = Field(
        "", description="OTLP/gRPC collector address used when --tracing-exporter=otlp")


S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Setting:
    """What a generated flag documents (read by scripts/settings_doc.py)."""

    env: str
    default: Any
    description: str


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple)


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and bool in typing.get_args(annotation)


def _shown(default: Any) -> str:
    """A default as the user would type it: `bbapi-cluster`, not `PosixPath('bbapi-cluster')`."""
    if isinstance(default, str):
        return repr(default)
    return str(default)


def add_arguments(parser: argparse.ArgumentParser, model: type[BaseSettings],
                  exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per settings field; unset flags stay None so env/defaults apply."""
    for name, field in model.model_fields.items():
        if name in exclude:
            continue
        env = ENV_PREFIX + name.upper()
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        given = "required" if field.is_required() else f"default {_shown(default)}"
        help_text = f"{field.description or name} [env {env}; {given}]"
        if _is_bool(field.annotation):
            action = parser.add_argument(_flag(name), dest=name, default=None, help=help_text,
                                         action=argparse.BooleanOptionalAction)
        elif _is_list(field.annotation):
            action = parser.add_argument(_flag(name), dest=name, default=None, action="append",
                                         help=help_text + " (repeatable)")
        else:
            action = parser.add_argument(_flag(name), dest=name, default=None, help=help_text)
        action.setting = Setting(env, default, field.description or name)  # type: ignore[attr-defined]


def from_args(model: type[S], args: argparse.Namespace, **overrides: Any) -> S:
    """Build the settings object: explicit overrides, then flags, then BBAPI_* env, then defaults."""
    values = {name: getattr(args, name) for name in model.model_fields
              if getattr(args, name, None) is not None}
    values.update(overrides)
    return model(**values)


def env_names(model: type[BaseSettings]) -> list[str]:
    return [ENV_PREFIX + name.upper() for name in model.model_fields]
