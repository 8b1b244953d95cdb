"""Print the path of the newest Python this machine has for `make matrix`, or nothing.

Usage: python scripts/newest_python.py [BASELINE]

Looks for python3.13, then python3.12, on PATH and under ~/.pyenv/versions (a pyenv shim on
PATH that has no such version selected does not count: each candidate must run). With
BASELINE (a Python command), prints only one newer than it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: The minor versions looked for, newest first.
MINORS = ((3, 13), (3, 12))


def version_of(python: str) -> tuple[int, int, int] | None:
    """The version `python` runs as, or None when it does not run."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) != 3:
        return None
    major, minor, micro = (int(part) for part in parts)
    return major, minor, micro


def candidates(minor: tuple[int, int]) -> list[str]:
    name = f"python{minor[0]}.{minor[1]}"
    found = [path] if (path := shutil.which(name)) else []
    versions = Path(os.path.expanduser("~/.pyenv/versions"))
    pattern = re.compile(rf"{minor[0]}\.{minor[1]}\.(\d+)")
    if versions.is_dir():
        builds = [(int(m[1]), d) for d in versions.iterdir() if (m := pattern.fullmatch(d.name))]
        found += [str(d / "bin" / name) for _, d in sorted(builds, reverse=True)]
    return found


def newest(baseline: str | None) -> str | None:
    floor = version_of(baseline) if baseline else None
    for minor in MINORS:
        for python in candidates(minor):
            version = version_of(python)
            if version is None or version[:2] != minor:
                continue
            if floor is not None and version[:2] <= floor[:2]:
                return None
            return python
    return None


if __name__ == "__main__":
    found = newest(sys.argv[1] if len(sys.argv) > 1 else None)
    if found:
        print(found)
