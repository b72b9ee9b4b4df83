"""Write the README's configuration reference from the CLI itself (flags come from the settings).

`python scripts/settings_doc.py` rewrites the block between the settings markers in README.md;
`--check` only reports whether it is current (tests use this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from services.cli.main import build_parser
from services.common.settings import CommonSettings, env_names

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "bbapi") -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix} {name}", sub))
                found.extend(_subcommands(sub, f"{prefix} {name}"))
    return found


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if value is None or value == "":
        return "(unset)"
    return f"`{value}`"


def _table(title: str, rows: list[argparse.Action]) -> list[str]:
    lines = [f"#### {title}", "", "| flag | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for action in rows:
        setting = action.setting  # type: ignore[attr-defined]
        lines.append(f"| `{action.option_strings[0]}` | `{setting.env}` | {_default(setting.default)} | "
                     f"{setting.description} |")
    return [*lines, ""]


def render() -> str:
    common = set(env_names(CommonSettings))
    commands = _subcommands(build_parser())
    lines: list[str] = []
    for command, parser in commands:
        rows = [a for a in parser._actions if hasattr(a, "setting")]
        if not lines and rows:
            lines = _table("every command", [a for a in rows if a.setting.env in common])
        rows = [a for a in rows if a.setting.env not in common]
        if rows:
            lines += _table(f"`{command}`", rows)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    updated = f"{head}{BEGIN}\n{render()}{END}{tail}"
    if args.check:
        if updated != text:
            print("README.md configuration reference is stale: run python scripts/settings_doc.py")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
