"""Bring a local model folder into the repository (what `modelwiz add /path/to/model` does).

Only what vLLM reads is taken (the same selection as a Hub download: config, tokenizer, generation
config, chat templates, weights; top level only), never a `.env`, notes or sub-folders: the
repository is mounted into the container. Files are hard-linked when the folder is on the same filesystem (no extra space, instant), else
copied. Everything goes into a hidden partial folder that is renamed into place at the end, so
the weights folder either is complete or does not exist.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

from wizard.download import select_files
from wizard.errors import Cancelled, ModelwizError, UsageError
from wizard.fsutil import fsync_dir
from wizard.progress import ProgressCallback, ProgressEvent, RateMeter, ignore_progress

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def is_local_source(source: str) -> bool:
    """A MODEL argument that names a folder on this machine rather than a Hub repo id."""
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().is_dir()


def check_local_model(source: str) -> Path:
    """The folder, when it holds a model vLLM can load (config.json and weight files)."""
    path = Path(source).expanduser().absolute()
    if not path.is_dir():
        raise UsageError(f"{source} is not a folder", hint="give a Hub repo id (owner/name) or a model folder")
    if not (path / "config.json").is_file():
        raise UsageError(
            f"{path} has no config.json, so it is not a Hugging Face model folder",
            hint="point at the folder that holds config.json and the *.safetensors files",
        )
    _files(path)
    return path


def _top_files(source: Path) -> dict[str, int]:
    """The regular files (or links to them) at the top of `source`, with their sizes."""
    out = {}
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError as error:
        raise ModelwizError(f"cannot read {source}: {error.strerror}") from None
    for entry in entries:
        try:
            if entry.is_file():  # follows a link; a loop or a dangling link is not a file
                out[entry.name] = entry.stat().st_size
        except OSError:
            continue
    return out


def _files(source: Path) -> list[Path]:
    """What vLLM reads of `source`. Raises UsageError when it has no weights vLLM can load, or an
    index that names shards the folder does not have."""
    no_weights = UsageError(
        f"{source} has no weight files (*.safetensors or pytorch_model*.bin)",
        hint="point at the folder that holds the model's weights, or download them first",
    )
    try:
        chosen, _skipped = select_files(_top_files(source))
    except ModelwizError:
        raise no_weights from None
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in chosen):  # an index alone is no weights
        raise no_weights
    index = next((n for n in chosen if n.endswith(".index.json")), None)
    if index is not None:
        try:
            weight_map = json.loads((source / index).read_text(encoding="utf-8")).get("weight_map") or {}
            missing = sorted(set(weight_map.values()) - set(chosen))
        except (OSError, ValueError, RecursionError, AttributeError, TypeError):
            raise UsageError(f"{source / index} is not a readable index", hint="fix or delete it") from None
        if missing:
            raise UsageError(
                f"{source} lacks {len(missing)} weight file(s) its {index} names, e.g. {missing[0]}",
                hint="copy the missing shards there, or download the model again",
            )
    return [Path(name) for name in chosen]


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
