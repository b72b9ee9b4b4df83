"""Just enough Dockerfile parsing to check stages, copies and the final user (no docker here)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.chart.kubeschema import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, command: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == command]

    def last(self, command: str) -> str | None:
        found = self.all(command)
        return found[-1] if found else None

    def exec_form(self, command: str) -> list[str] | None:
        value = self.last(command)
        return None if value is None else list(json.loads(value))


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    """Stages in order; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    found: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        command, _, argument = line.partition(" ")
        command = command.upper()
        if command == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument.strip(), re.IGNORECASE)
            assert match, line
            found.append(Stage(name=match.group(2) or str(len(found)), base=match.group(1)))
        elif found:
            found[-1].instructions.append((command, argument.strip()))
    return found


def workdir_copies(stage_list: list[Stage], name: str) -> dict[str, str]:
    """Where each COPY source from the build context lands in stage `name` (following bases)."""
    by_name = {stage.name: stage for stage in stage_list}
    chain: list[Stage] = []
    stage: Stage | None = by_name[name]
    while stage is not None:
        chain.insert(0, stage)
        stage = by_name.get(stage.base)
    placed: dict[str, str] = {}
    workdir = "/"
    for stage in chain:
        for command, argument in stage.instructions:
            if command == "WORKDIR":
                workdir = argument
            elif command == "COPY" and not argument.startswith("--from"):
                *sources, target = [part for part in argument.split() if not part.startswith("--")]
                for source in sources:
                    destination = target if target.startswith("/") else f"{workdir}/{target}"
                    destination = destination.replace("/./", "/").rstrip("/")
                    placed[source] = destination if len(sources) == 1 and not target.endswith("/") else (
                        f"{destination}/{source}")
    return placed
