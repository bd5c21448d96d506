"""Lineage captured at registration: the code revision of the caller's git checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["code_revision"]


def code_revision(cwd: Path | None = None) -> str | None:
    """``<commit sha>`` of the git checkout around ``cwd`` (``+dirty`` with uncommitted changes),
    or None outside a checkout or without git."""
    git = shutil.which("git")
    if git is None:
        return None
    where = str(cwd or Path.cwd())
    try:
        head = subprocess.run(
            [git, "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = head.stdout.strip()
    return f"{sha}+dirty" if status.stdout.strip() else sha
