"""Crash-safe file writes and file hashes.

Every file modelwiz writes goes through `atomic_write_bytes`: the data goes to a temp file in the
same folder, is flushed and fsync'd, then `os.replace`d over the target, and the folder is fsync'd.
A crash at any point leaves either the old file or the new one, never a half-written file; at
worst a temp file (`.NAME.modelwiz-tmp-XXXX`) is left behind, which readers ignore.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TypeGuard

TEMP_MARK = ".modelwiz-tmp-"
_CHUNK = 1024 * 1024


def is_temp_file(name: str) -> bool:
    """True for the temp files `atomic_write_bytes` creates (left behind only by a crash)."""
    return name.startswith(".") and TEMP_MARK in name


def remove_stale_temps(folder: Path | str) -> list[str]:
    """Delete temp files a crashed write left in `folder` (not recursive); returns their names."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        if is_temp_file(name):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(name)
            except (IsADirectoryError, FileNotFoundError, PermissionError):
                pass
    return removed


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable. A no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write `data` to `path` so that readers see the old content or the new, never a mix.

    The file keeps the mode of the file it replaces; a new file gets `mode` (default 0o644).
    `durable=False` skips the fsyncs: for a record that is only a shortcut (after a power loss it
    may be empty, and readers then redo the work), written often on a hot path.
    """
    path = Path(path)
    folder = path.parent
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}{TEMP_MARK}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_dir(folder)


def atomic_write_text(
    path: Path | str, text: str, *, encoding: str = "utf-8", mode: int | None = None, durable: bool = True
) -> None:
    atomic_write_bytes(path, text.encode(encoding), mode=mode, durable=durable)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: Path | str) -> str:
    """The hex sha256 of a file's content (hashlib reads it in chunks, without the GIL)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256_or_none(path: Path | str) -> str | None:
    """The file's sha256, or None when it does not exist."""
    try:
        return sha256_file(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def git_blob_id_file(path: Path | str) -> str:
    """The git blob id of a file (sha1 over `blob <size>\\0` and the content): what the Hub lists
    as the id of a file not stored with LFS."""
    digest = hashlib.sha1(b"blob %d\0" % os.stat(path).st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_sha256(value: str | None) -> TypeGuard[str]:
    """Whether `value` is a hex sha256: the id the Hub lists for an LFS file (the weights)."""
    return value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def hub_content_hash(path: Path | str, expected: str) -> str | None:
    """The hash of `path` in the form of `expected`: a sha256 (64 hex digits, LFS files) or a git
    blob id (40, other files). None when `expected` is neither (nothing to compare with)."""
    if is_sha256(expected):
        return sha256_file(path)
    if len(expected) == 40:
        return git_blob_id_file(path)
    return None
