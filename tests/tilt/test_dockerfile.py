"""The image: multi-stage, non-root, `bbapi` as entrypoint, and a build context that has it all."""

from __future__ import annotations

import fnmatch

from tests.chart.kubeschema import REPO
from tests.tilt.dockerfile import stages, workdir_copies


def ignored(path: str) -> bool:
    """Apply .dockerignore's allow-list rules (last match wins, `!` re-includes)."""
    verdict = False
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.replace("**/", "")) or (
                path.startswith(pattern + "/")):
            verdict = not negate
    return verdict


def test_final_stage_is_the_non_root_runtime() -> None:
    found = stages()
    final = found[-1]
    assert final.name == "runtime" and len(found) >= 3  # multi-stage: the build stage stays behind
    assert final.last("USER") == "10001:10001"
    assert final.exec_form("ENTRYPOINT") == ["bbapi"] and final.exec_form("CMD") == ["serve"]
    assert final.all("COPY") == ["--from=build /opt/venv /opt/venv"]  # no sources, no build tools


def test_the_repository_is_pip_installed_with_the_operator() -> None:
    build = next(stage for stage in stages() if stage.name == "build")
    runs = " ".join(build.all("RUN"))
    assert "pip install --no-deps ." in runs
    assert "['optional-dependencies']['operator']" in runs  # kopf and the client are in the one image


def test_build_context_holds_every_copied_path() -> None:
    for source in workdir_copies(stages(), "dev"):
        assert (REPO / source).exists(), source
        assert not ignored(source), f"{source} is excluded by .dockerignore"
    assert ignored("tests/operator/test_crd.py") and ignored(".venv/bin/python")
    assert ignored("services/__pycache__/x.pyc")
