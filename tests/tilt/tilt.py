"""Evaluate the Tiltfile with starlark-pyo3 and stand-ins for the Tilt builtins it calls.

The stand-ins take the same parameters as Tilt's (so a misspelt keyword fails), record what
was asked, and do the real work where it is cheap: `helm()` renders the chart with the Helm
SDK, `read_yaml()` reads the file. Anything else the Tiltfile calls is undefined and fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import starlark as sl
import yaml
from bbapi_operator.apply import merge

from tests.chart.helm import render
from tests.chart.kubeschema import REPO

TILTFILE = REPO / "Tiltfile"
LIVE_UPDATE_STEPS = ("fall_back_on", "initial_sync", "sync", "run")


@dataclass
class TiltRun:
    """What one evaluation asked Tilt to do."""

    args: dict[str, Any]
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # k8s_kind: kind -> image JSONPath
    resources: list[dict[str, Any]] = field(default_factory=list)  # k8s_resource calls
    local_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)  # config.define_*: name -> type

    # --- core builtins ----------------------------------------------------------------
    def version_settings(self, check_updates: bool = True, constraint: str = "") -> None:
        assert constraint

    def allow_k8s_contexts(self, contexts: list[str]) -> None:
        self.contexts.extend(contexts)

    def docker_build(self, ref: str, context: str, build_args: dict[str, str] | None = None,
                     dockerfile: str = "Dockerfile", live_update: list[Any] | None = None,
                     ignore: list[str] | None = None, only: list[str] | None = None,
                     entrypoint: list[str] | None = None, target: str = "", **other: Any) -> None:
        assert ref not in self.builds, f"image {ref} built twice"
        self.builds[ref] = {"context": context, "dockerfile": dockerfile, "live_update": list(live_update or []),
                            "only": list(only or []), "entrypoint": entrypoint, "target": target, **other}

    def sync(self, local_path: str, remote_path: str) -> tuple[str, ...]:
        return ("sync", local_path, remote_path)

    def run(self, cmd: str, trigger: list[str] | None = None, echo_off: bool = False) -> tuple[Any, ...]:
        return ("run", cmd, tuple(trigger or ()))

    def fall_back_on(self, files: list[str]) -> tuple[Any, ...]:
        return ("fall_back_on", tuple(files))

    def helm(self, pathToChartDir: str, name: str = "", namespace: str = "", values: list[str] | None = None,
             set: list[str] | None = None, kube_version: str = "", skip_crds: bool = False) -> str:
        overrides: dict[str, Any] = {}
        for path in values or []:
            overrides = merge(overrides, yaml.safe_load((REPO / path).read_text()))
        for expression in set or []:
            overrides = merge(overrides, helm_python.parse_set_string(expression))
        assert Path(REPO / pathToChartDir).resolve() == (REPO / "charts" / "bbapi").resolve()
        rendered = render(overrides, release=name, namespace=namespace, crds=not skip_crds)
        return yaml.safe_dump_all(rendered.documents)

    def k8s_yaml(self, yaml_text: str, allow_duplicates: bool = False) -> None:
        self.documents.extend(d for d in yaml.safe_load_all(yaml_text) if d)

    def k8s_kind(self, kind: str, api_version: str | None = None, image_json_path: str | None = None,
                 image_object_json_path: str | None = None, pod_readiness: str = "") -> None:
        assert image_json_path
        self.kinds[kind] = image_json_path

    def k8s_resource(self, workload: str = "", new_name: str = "", port_forwards: list[str] | None = None,
                     extra_pod_selectors: list[dict[str, str]] | None = None, trigger_mode: int = 0,
                     resource_deps: list[str] | None = None, objects: list[str] | None = None,
                     auto_init: bool = True, pod_readiness: str = "", links: list[str] | None = None,
                     labels: list[str] | None = None) -> None:
        self.resources.append({"workload": workload, "new_name": new_name, "port_forwards": port_forwards or [],
                               "resource_deps": resource_deps or [], "objects": objects or []})

    def local_resource(self, name: str, cmd: str = "", deps: list[str] | None = None, trigger_mode: int = 0,
                       resource_deps: list[str] | None = None, ignore: list[str] | None = None,
                       auto_init: bool = True, serve_cmd: str = "", env: dict[str, str] | None = None,
                       serve_env: dict[str, str] | None = None, labels: list[str] | None = None,
                       allow_parallel: bool = False) -> None:
        self.local_resources[name] = {"cmd": cmd, "serve_cmd": serve_cmd, "deps": deps or [],
                                      "resource_deps": resource_deps or [], "serve_env": serve_env or {}}

    def read_yaml(self, path: str, default: Any = None) -> Any:
        return yaml.safe_load((REPO / path).read_text())

    def encode_yaml(self, obj: Any) -> str:
        return yaml.safe_dump(obj)

    # --- config ---------------------------------------------------------------------------
    def define_bool(self, name: str, args: bool = False, usage: str = "") -> None:
        self.flags[name] = "bool"

    def define_string(self, name: str, args: bool = False, usage: str = "") -> None:
        self.flags[name] = "string"

    def parse(self) -> dict[str, Any]:
        unknown = set(self.args) - set(self.flags)
        assert not unknown, f"flags not defined: {unknown}"
        return dict(self.args)

    # --- extensions -----------------------------------------------------------------------
    def docker_build_with_restart(self, ref: str, context: str, entrypoint: list[str],
                                  live_update: list[Any] | None = None, base_suffix: str = "",
                                  restart_file: str = "", trigger: list[str] | None = None,
                                  exit_policy: str = "restart", **kwargs: Any) -> None:
        self.docker_build(ref, context, entrypoint=entrypoint, live_update=live_update, **kwargs)

    def namespace_create(self, name: str, allow_duplicates: bool = False, annotations: list[str] | None = None,
                         labels: list[str] | None = None) -> None:
        self.namespaces.append(name)


EXTENSIONS = {"ext://restart_process": ("docker_build_with_restart",), "ext://namespace": ("namespace_create",)}
CORE = ("version_settings", "allow_k8s_contexts", "docker_build", "sync", "run", "fall_back_on", "helm",
        "k8s_yaml", "k8s_kind", "k8s_resource", "local_resource", "read_yaml", "encode_yaml")


def evaluate(args: dict[str, Any] | None = None) -> TiltRun:
    """Run the Tiltfile as `tilt up -- <args>` would, against the stand-ins."""
    tilt = TiltRun(args=args or {})
    module = sl.Module()
    for name in CORE:
        module.add_callable(name, getattr(tilt, name))
    for name in ("define_bool", "define_string", "parse"):
        module.add_callable(f"_config_{name}", getattr(tilt, name))
    module["TRIGGER_MODE_AUTO"] = 0
    module["TRIGGER_MODE_MANUAL"] = 1
    tilt_globals = sl.Globals.extended_by([sl.LibraryExtension.StructType])
    prelude = "config = struct(define_bool=_config_define_bool, define_string=_config_define_string, " \
              "parse=_config_parse)\n"
    sl.eval(module, sl.parse("prelude", prelude, sl.Dialect.extended()), tilt_globals)

    def load(name: str) -> sl.FrozenModule:
        extension = sl.Module()
        for function in EXTENSIONS[name]:
            extension.add_callable(function, getattr(tilt, function))
        return extension.freeze()

    ast = sl.parse("Tiltfile", TILTFILE.read_text(), sl.Dialect.extended())
    sl.eval(module, ast, tilt_globals, sl.FileLoader(load))
    return tilt
