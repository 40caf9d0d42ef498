"""Bring a local model folder into the repository (what `modelwiz add /path/to/model` does).

Files are hard-linked when the folder is on the same filesystem (no extra space, instant), else
copied. Everything goes into a hidden partial folder that is renamed into place at the end, so
the weights folder either is complete or does not exist.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from wizard.errors import Cancelled, ModelwizError, UsageError
from wizard.fsutil import fsync_dir
from wizard.progress import ProgressCallback, ProgressEvent, RateMeter, ignore_progress

_SKIP = {".git", ".cache", "__pycache__"}


def is_local_source(source: str) -> bool:
    """A MODEL argument that names a folder on this machine rather than a Hub repo id."""
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().is_dir()


def check_local_model(source: str) -> Path:
    path = Path(source).expanduser().absolute()
    if not path.is_dir():
        raise UsageError(f"{source} is not a folder", hint="give a Hub repo id (owner/name) or a model folder")
    if not (path / "config.json").is_file():
        raise UsageError(
            f"{path} has no config.json, so it is not a Hugging Face model folder",
            hint="point at the folder that holds config.json and the *.safetensors files",
        )
    return path


def _files(source: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(source, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP)
        for name in sorted(names):
            out.append(Path(root, name).relative_to(source))
    return out


def local_size(source: Path) -> int:
    return sum((source / rel).stat().st_size for rel in _files(source))


def copy_local_model(
    source: Path,
    dest: Path,
    *,
    on_progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> Path:
    """Link or copy `source` into `dest` (which must not exist yet). Returns `dest`."""
    if dest.exists():
        return dest
    partial = dest.with_name(f".{dest.name}.modelwiz-partial")
    if partial.exists():
        shutil.rmtree(partial)
    files = _files(source)
    total = sum((source / rel).stat().st_size for rel in files)
    meter = RateMeter()
    done = 0
    task = f"copy {source}"
    try:
        for i, rel in enumerate(files):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"copying {source} was cancelled", hint="run the same command again to finish")
            src, dst = source / rel, partial / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            done += dst.stat().st_size
            meter.add(done)
            on_progress(
                ProgressEvent(
                    task,
                    done,
                    total,
                    current=str(rel),
                    files_done=i + 1,
                    files_total=len(files),
                    rate_bytes_per_s=meter.rate(),
                    eta_s=meter.eta(done, total),
                )
            )
        os.replace(partial, dest)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelwizError(f"cannot copy {source} into the repository: {error}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    on_progress(ProgressEvent(task, done, total, files_done=len(files), files_total=len(files), finished=True))
    return dest
