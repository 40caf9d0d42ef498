"""What a modelwiz download leaves in its folder, read without downloading anything.

wizard.download writes these records; the repository, `status` and `verify` read them.
"""

from __future__ import annotations

import json
from pathlib import Path

STATE_DIR = Path(".cache") / "modelwiz"
MARKER = STATE_DIR / "complete.json"
LOCK = STATE_DIR / "lock"
VERIFIED = STATE_DIR / "verified.json"  # repo path -> content hash checked after it arrived
STARTED = STATE_DIR / "download.json"  # which model this folder holds (written before any byte)
PARTIAL_DIR = STATE_DIR / "partial"  # LFS files in progress, named by path and sha256 (wizard.resumable)
HF_STATE_DIR = Path(".cache") / "huggingface"
MARKER_VERSION = 1


def read_marker(dest: Path) -> dict | None:
    try:
        data = json.loads((Path(dest) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != MARKER_VERSION or not isinstance(data.get("files"), dict):
        return None
    return data


def is_complete(dest: Path) -> bool:
    """True only if a download into `dest` finished: the marker exists and every file it lists is
    there with its recorded size."""
    dest = Path(dest)
    marker = read_marker(dest)
    if marker is None or not marker["files"]:
        return False
    for path, size in marker["files"].items():
        try:
            if (dest / path).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def read_verified(dest: Path) -> dict[str, str]:
    """The hashes checked so far (repo path -> content hash), as recorded in dest."""
    try:
        data = json.loads((Path(dest) / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def held_model(dest: Path) -> str | None:
    """The Hub model an earlier modelwiz download into `dest` was fetching, or None."""
    for record in (STARTED, MARKER):
        try:
            data = json.loads((Path(dest) / record).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("repo_id"), str):
            return data["repo_id"]
    return None
