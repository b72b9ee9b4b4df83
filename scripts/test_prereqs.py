"""What `scripts/test` needs before it runs: installs what it can, names in one line what it cannot.

- the dev and operator extras, exactly as pinned in pyproject.toml, in the running interpreter's
  environment (checked against installed metadata, so the usual case costs no pip call);
- a real Bazel (Debian's bazel-bootstrap) and Prometheus (Debian's prometheus: promtool and the
  server the alert and dashboard tests run), installed with apt-get when running as root;
- the official Bazel 2.1 the grpcs:// test drives (from npm, see tests/e2e/test_bazel_tls.py);
- PostgreSQL at 127.0.0.1:5432, which it cannot install: it says so and stops.

Exits 0 when everything is there, 1 with an `error:` line otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev", "operator")
POSTGRES = ("127.0.0.1", 5432)
TLS_BAZEL = Path(os.environ.get("BBAPI_TLS_BAZEL", "/opt/bazel-tls/node_modules/.bin/bazel"))
TLS_BAZEL_PACKAGE = "@bazel/bazel-linux_x64@2.1.0"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([^\s;,]+))?")


class Missing(Exception):
    """A prerequisite this script cannot provide; the message is the line to print."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unmet_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Requirements of the project and its test extras that are absent or at another pinned version."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in EXTRAS for r in project["optional-dependencies"][extra])]
    unmet = []
    for requirement in wanted:
        match = _REQUIREMENT.match(requirement)
        assert match is not None, requirement
        name, pinned = match[1], match[2]
        try:
            installed = metadata.version(_canonical(name))
        except metadata.PackageNotFoundError:
            unmet.append(requirement)
            continue
        if pinned is not None and installed != pinned:
            unmet.append(requirement)
    return unmet


def _project_installed() -> bool:
    """bbapi is installed, and editable from this checkout (not from another clone)."""
    spec = importlib.util.find_spec("services")
    return spec is not None and spec.origin is not None and Path(spec.origin).resolve().is_relative_to(ROOT)


def ensure_python_packages() -> None:
    unmet = unmet_requirements()
    if not unmet and _project_installed():
        return
    if sys.prefix == sys.base_prefix:
        raise Missing(f"{sys.executable} is not a virtualenv; make one first: "
                      "python3 -m venv .venv && . .venv/bin/activate && pip install -e .")
    shown = ", ".join(unmet[:3]) + (" ..." if len(unmet) > 3 else "")
    print(f"installing the test dependencies ({shown or 'bbapi itself'}) into {sys.prefix}", flush=True)
    extras = ",".join(EXTRAS)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extras}]"], check=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_debian(command: str, package: str, purpose: str) -> None:
    """`command` on the PATH, from Debian's `package` (apt-get, as root) if it is not there yet."""
    if shutil.which(command):
        return
    if not (_is_root() and shutil.which("apt-get")):
        raise Missing(f"{command} not found: {purpose}; install Debian's as root "
                      f"(apt-get install -y {package}) or put one on the PATH")
    print(f"installing {command} (apt-get install {package})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_tls_bazel() -> None:
    if TLS_BAZEL.exists():
        return
    prefix = TLS_BAZEL.parent.parent.parent
    npm = shutil.which("npm")
    if npm is None or not os.access(prefix.parent if not prefix.exists() else prefix, os.W_OK):
        raise Missing(f"{TLS_BAZEL} not found (the grpcs:// test's Bazel): "
                      f"npm install --prefix {prefix} {TLS_BAZEL_PACKAGE}, or point BBAPI_TLS_BAZEL at one")
    print(f"installing {TLS_BAZEL_PACKAGE} into {prefix} (npm)", flush=True)
    subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix),
                    TLS_BAZEL_PACKAGE], check=True)


def check_postgres() -> None:
    try:
        socket.create_connection(POSTGRES, timeout=5).close()
    except OSError as err:
        host, port = POSTGRES
        raise Missing(f"PostgreSQL is not reachable at {host}:{port} ({err.strerror or err}): the database "
                      "tests need one accepting user postgres without a password (trust auth)") from None


def main() -> int:
    try:
        ensure_python_packages()
        ensure_debian("bazel", "bazel-bootstrap", "the end-to-end tests drive a real Bazel")
        ensure_debian("promtool", "prometheus", "the alert and dashboard tests run a real Prometheus")
        ensure_tls_bazel()
        check_postgres()
    except Missing as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: {' '.join(map(str, err.cmd))} failed (exit {err.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
