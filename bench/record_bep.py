"""Record a real Bazel build's event stream for `bench/ingest.py --bep`.

    python bench/record_bep.py OUT.bep [--genrules 300] [--outputs 8]

Generates a workspace of N genrules with M small outputs each (the cache-speed issue's bench workspace:
300 x 8 gives 1,217 events, ~2.3 MB, mostly NamedSetOfFiles, TargetComplete and Progress), builds it with
the real Bazel and `--build_event_binary_file`, and keeps that file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def workspace(root: Path, genrules: int, outputs: int) -> None:
    (root / "WORKSPACE").write_text('workspace(name = "bench")\n')
    rules = []
    for i in range(genrules):
        outs = ", ".join(f'"g{i}_{j}.txt"' for j in range(outputs))
        command = f"for o in $(OUTS); do echo {i} $$o > $$o; done"
        rules.append(f'genrule(name = "g{i}", outs = [{outs}], cmd = "{command}")\n')
    (root / "BUILD").write_text("".join(rules))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--genrules", type=int, default=300)
    parser.add_argument("--outputs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, bazel_root = Path(tmp) / "ws", Path(tmp) / "bazel-root"
        root.mkdir()
        workspace(root, args.genrules, args.outputs)
        bazel = ["bazel", f"--output_user_root={bazel_root}"]
        try:
            subprocess.run([*bazel, "build", "//...", "--color=no", "--curses=no", "--noshow_progress",
                            f"--build_event_binary_file={args.out.resolve()}"], cwd=root, check=True,
                           capture_output=True)
        finally:
            subprocess.run([*bazel, "shutdown"], cwd=root, capture_output=True)
            shutil.rmtree(bazel_root, ignore_errors=True)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
