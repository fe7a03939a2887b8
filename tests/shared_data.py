"""Where the project's ``shared/`` data (the SROIE receipts) is: beside the checkout, as CI and
developers have it. Tests that need it go through the ``need`` fixture (fail under CI, skip elsewhere).

Looked for, in order: ``$AWS_ML_SHARED_DIR``; ``../shared`` beside this checkout; beside the main
checkout of a git worktree; beside the repository this one was cloned from, when that is a local
folder (``git clone . /tmp/x`` of a developer checkout).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def shared_dir() -> Path:
    candidates = [Path(os.environ["AWS_ML_SHARED_DIR"])] if os.environ.get("AWS_ML_SHARED_DIR") else []
    candidates.append(ROOT.parent / "shared")
    common = _git("rev-parse", "--path-format=absolute", "--git-common-dir")
    if common:
        candidates.append(Path(common).parent.parent / "shared")
    origin = _git("config", "--get", "remote.origin.url")
    if origin and "://" not in origin and ":" not in origin.split("/")[0] and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared")
    return next((c for c in candidates if c.is_dir()), candidates[0])
