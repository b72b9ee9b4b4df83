"""Render the chart in-process (helm-python-sdk wraps Helm's Go SDK; no helm binary needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import helm_python
import yaml

from tests.chart.kubeschema import CHART


@dataclass(frozen=True)
class Rendered:
    documents: list[dict[str, Any]]  # templates, then (when asked) the CRDs
    notes: str

    def find(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind and name in (None, d["metadata"]["name"])]

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = self.find(kind)
        return found


def render(values: dict[str, Any] | None = None, *, release: str = "bbapi", namespace: str = "builds",
           crds: bool = False) -> Rendered:
    """Like `helm template` (with `--include-crds` when `crds`)."""
    chart = helm_python.Chart.load(str(CHART))
    files = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    sources = [text for path, text in sorted(files.items()) if not path.endswith("NOTES.txt")]
    if crds:
        sources += [crd["data"] for crd in chart.crds]
    documents = [d for text in sources for d in yaml.safe_load_all(text) if d]
    notes = next((text for path, text in files.items() if path.endswith("NOTES.txt")), "")
    return Rendered(documents, notes)
