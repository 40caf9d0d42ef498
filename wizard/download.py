"""Download what vLLM needs of a Hub model straight into a folder, with progress, cancel and resume.

How it works, and why:
- `plan_download` asks the Hub (one `model_info` call) for the commit sha and every file's size,
  keeps only what vLLM loads (`select_files`) and counts what is already on disk, so the disk-space
  check runs before a single byte moves.
- The files are fetched in a pool of 8 threads (as `hf download` does), at the planned commit, into
  a partial file on the same filesystem that is renamed into place: every weight byte is stored
  once, and a file only appears under its name when it is whole. LFS files (the weights, the Hub
  lists their sha256) go through `wizard.resumable`: their partial is
  `dest/.cache/modelwiz/partial/<path>.<sha256>.part`, kept on failure, cancel or kill, and
  continued with a Range request by the next attempt, run or process (huggingface_hub 2.x deletes
  its partial when a download fails). Small files go through `hf_hub_download(..., local_dir=dest)`;
  temp files it leaves when killed are deleted first.
- Finished files are kept: checked by size, and by the hash modelwiz recorded or huggingface_hub's
  metadata/etag.
- Integrity: every file is hashed as it arrives (LFS files while their bytes are written, others
  in their download worker right after, still in the page cache) and compared with the Hub's
  content hash: the sha256 for LFS files, the git blob id for the others (the ids
  `model_info(files_metadata=True)` lists). huggingface_hub 2.x checks only the size. A file that
  does not match is deleted and fetched once more, then the download fails. Verified hashes are
  recorded in `dest/.cache/modelwiz/verified.json` as they come, so a resumed run re-hashes only
  files that a killed run left unverified; `modelwiz verify` re-checks them.
- `dest/.cache/modelwiz/complete.json` (the commit sha, the file list with sizes and hashes) is
  written atomically as the very last step, and removed before a download starts; `is_complete` trusts
  only it, so a half-done folder never counts as a model.
- Progress: a `tqdm_class` of our own (huggingface_hub has no callback API) feeds one
  thread-safe tracker that emits `ProgressEvent`s (bytes done/total across files, current file,
  rate, ETA), never decreasing. The callback runs on worker threads, one call at a time.
- Cancel: setting `cancel` makes the next chunk raise inside the download; finished files and the
  partial LFS files stay, and `Cancelled` is raised. Ctrl-C does the same.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.download_records import (
    HF_STATE_DIR,
    LOCK,
    MARKER,
    MARKER_VERSION,
    PARTIAL_DIR,
    STARTED,
    STATE_DIR,
    VERIFIED,
    held_model,
    is_complete,
    read_marker,
    read_verified,
)
from wizard.errors import Cancelled, ModelwizError, UsageError
from wizard.fsutil import atomic_write_text, fsync_dir, hub_content_hash, is_sha256
from wizard.progress import ProgressCallback, ProgressEvent, RateMeter, ignore_progress
from wizard.resumable import PART_SUFFIX, fetch_resumable, partial_name
from wizard.units import format_bytes

if TYPE_CHECKING:
    from wizard.hub import HubModel

DISK_MARGIN_BYTES = 64 * 1024**2  # keep this much free beyond the download itself
MAX_WORKERS = 8  # as huggingface_hub's snapshot_download / `hf download`
EMIT_INTERVAL_S = 0.1  # at most ~10 progress events a second (plus file ends)
FETCH_ATTEMPTS = 2  # a file whose bytes do not match the Hub's hash is fetched once more

# -- file selection ----------------------------------------------------------------------------------
# What vLLM reads from a model folder (HF format): config, tokenizer, generation config, weights,
# and custom code for trust_remote_code models. Top level only: vLLM never looks in sub-folders.
_ALWAYS = (
    "config.json",
    "generation_config.json",
    "params.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "tokenizer.model.*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
    "tekken.json",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "quant_config.json",
    "quantize_config.json",
    "hf_quant_config.json",
    "*.py",
    "LICENSE*",
    "NOTICE*",
    "USE_POLICY*",
)
_SAFETENSORS = ("*.safetensors", "*.safetensors.index.json")
_PYTORCH = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
_MISTRAL_NATIVE = ("consolidated*.safetensors", "consolidated.safetensors.index.json")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_files(files: dict[str, int]) -> tuple[dict[str, int], tuple[str, ...]]:
    """(the files vLLM needs, the ones skipped). Raises ModelwizError when there are no usable weights.

    Safetensors win: `*.bin`, `*.pth`, `original/`, `consolidated.*` are skipped when HF-format
    safetensors exist. Without them, Mistral-native `consolidated*.safetensors` are used, then
    `pytorch_model*.bin` as the last resort (vLLM still loads those).
    """
    top = {p: s for p, s in files.items() if "/" not in p}
    hf_st = [p for p in top if _matches(p, _SAFETENSORS) and not _matches(p, _MISTRAL_NATIVE)]
    if hf_st:
        weights: tuple[str, ...] = _SAFETENSORS
        exclude: tuple[str, ...] = (*_MISTRAL_NATIVE, "params.json", "tekken.json")
    elif any(_matches(p, _MISTRAL_NATIVE) for p in top):
        weights, exclude = _MISTRAL_NATIVE, ()
    elif any(_matches(p, _PYTORCH) for p in top):
        weights, exclude = _PYTORCH, ()
    else:
        raise ModelwizError(
            "the repo has no safetensors or PyTorch weights that vLLM can load",
            hint="pick a repo with *.safetensors files (GGUF/ONNX/MLX-only repos are not served by this setup)",
        )
    chosen = {
        p: s for p, s in top.items() if (_matches(p, weights) or _matches(p, _ALWAYS)) and not _matches(p, exclude)
    }
    skipped = tuple(sorted(set(files) - set(chosen)))
    return dict(sorted(chosen.items())), skipped


# -- plan --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadPlan:
    repo_id: str
    dest: Path
    sha: str  # the commit every file is fetched at
    files: dict[str, int]  # selected: repo path -> size
    skipped: tuple[str, ...]  # in the repo, not needed by vLLM
    present: frozenset[str]  # selected files already complete in dest
    free_bytes: int  # free space on dest's filesystem now
    revision: str | None = None
    etags: dict[str, str] = field(default_factory=dict)  # repo path -> the Hub's etag, to check files on disk
    verified: frozenset[str] = frozenset()  # present files whose hash was checked already
    partial: Mapping[str, int] = field(default_factory=dict)  # unfinished LFS files -> bytes already on disk

    @property
    def hashes(self) -> dict[str, str]:
        """The content hash the Hub lists for each selected file (its etag: sha256 or git blob id)."""
        return {p: self.etags[p] for p in self.files if p in self.etags}

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def present_bytes(self) -> int:
        return sum(self.files[p] for p in self.present)

    @property
    def partial_bytes(self) -> int:
        return sum(self.partial.values())

    @property
    def bytes_on_disk(self) -> int:
        """What an earlier run left that this one keeps: whole files and the partial ones' bytes."""
        return self.present_bytes + self.partial_bytes

    @property
    def bytes_to_fetch(self) -> int:
        return self.total_bytes - self.bytes_on_disk

    @property
    def fits(self) -> bool:
        return self.bytes_to_fetch + DISK_MARGIN_BYTES <= self.free_bytes or self.bytes_to_fetch == 0


def _disk_free(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _present_files(
    dest: Path, files: dict[str, int], etags: Mapping[str, str], sha: str, recorded: Mapping[str, str]
) -> frozenset[str]:
    """Files already whole in dest *and the same content as the Hub's*: right size, and the hash
    modelwiz recorded for it, or huggingface_hub's metadata for it, names the file's current etag
    (sha256 for LFS files, the git blob id otherwise), or, where the Hub gave no etag, the commit
    being fetched. Same-size files from another commit or another model (a fine-tune over its base)
    are fetched again."""
    present = set()
    meta_dir = dest / HF_STATE_DIR / "download"
    for path, size in files.items():
        target = dest / path
        try:
            if not (target.is_file() and target.stat().st_size == size):
                continue
            if etags.get(path) and recorded.get(path) == etags[path]:
                present.add(path)
                continue
            lines = (meta_dir / f"{path}.metadata").read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        commit, etag = ([*lines, "", ""])[:2]
        expected = etags.get(path)
        if (expected and etag.strip() == expected) or (not expected and commit.strip() == sha):
            present.add(path)
    return frozenset(present)


def plan_download(repo_id: str, dest: Path, *, revision: str | None = None, token: str | None = None) -> DownloadPlan:
    """What a download of `repo_id` into `dest` would fetch, and whether it fits. One Hub request."""
    from huggingface_hub import HfApi

    from wizard.hub import check_repo_id, file_etags, translate_error

    repo_id = check_repo_id(repo_id)
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, token=token)
    except Exception as error:  # noqa: BLE001 - every library failure becomes one line
        raise translate_error(error, repo_id, revision=revision) from None
    sizes = {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}
    return _plan(repo_id, Path(dest), str(info.sha or ""), sizes, file_etags(info.siblings), revision)


def plan_from_model(model: HubModel, dest: Path) -> DownloadPlan:
    """The plan for a model already looked up (`hub.lookup_model`): no Hub request."""
    return _plan(model.repo_id, Path(dest), model.sha, model.files, model.etags, model.revision)


def _plan(
    repo_id: str, dest: Path, sha: str, sizes: dict[str, int], etags: dict[str, str], revision: str | None
) -> DownloadPlan:
    files, skipped = select_files(sizes)
    plan = DownloadPlan(repo_id, dest, sha, files, skipped, frozenset(), 0, revision=revision, etags=etags)
    return _as_on_disk(plan)


def _as_on_disk(plan: DownloadPlan) -> DownloadPlan:
    """`plan` with what its folder holds now: the whole files (and which of them an earlier run
    hashed), the partial ones, and the free space."""
    recorded = read_verified(plan.dest)
    present = _present_files(plan.dest, plan.files, plan.etags, plan.sha, recorded)
    return replace(
        plan,
        present=present,
        verified=frozenset(p for p in present if p in plan.etags and recorded.get(p) == plan.etags[p]),
        partial=_partials(plan.dest, plan.files, plan.etags, present),
        free_bytes=_disk_free(plan.dest),
    )


def _partials(dest: Path, files: dict[str, int], etags: Mapping[str, str], present: frozenset[str]) -> dict[str, int]:
    """The unfinished LFS files an earlier run left a partial of, with its bytes (at most the file's size)."""
    out = {}
    for path, size in files.items():
        expected = etags.get(path)
        if path in present or not is_sha256(expected):
            continue
        try:
            have = (dest / PARTIAL_DIR / partial_name(path, expected)).stat().st_size
        except OSError:
            continue
        if 0 < have <= size:
            out[path] = have
    return out


def check_disk(plan: DownloadPlan) -> None:
    """Refuse, with the numbers, a download that would not fit on dest's filesystem."""
    if plan.fits:
        return
    raise ModelwizError(
        f"not enough disk space in {plan.dest}: {plan.repo_id} needs {format_bytes(plan.bytes_to_fetch)} more"
        f" (of {format_bytes(plan.total_bytes)}), {format_bytes(plan.free_bytes)} free",
        hint=f"free at least {format_bytes(plan.bytes_to_fetch + DISK_MARGIN_BYTES - plan.free_bytes)}"
        " or choose another --to folder",
    )


# -- completeness marker -----------------------------------------------------------------------------
def _write_marker(dest: Path, plan: DownloadPlan) -> None:
    data = {
        "version": MARKER_VERSION,
        "repo_id": plan.repo_id,
        "revision": plan.revision,
        "sha": plan.sha,
        "files": plan.files,
        "hashes": plan.hashes,
        "total_bytes": plan.total_bytes,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = dest / MARKER
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _remove_marker(dest: Path) -> None:
    try:
        (dest / MARKER).unlink()
    except FileNotFoundError:
        return
    fsync_dir((dest / MARKER).parent)


class CorruptFile(ModelwizError):
    """A file's bytes do not hash to what the Hub lists for it."""


class _Verifier:
    """Checks each arrived file against the Hub's hash and records the good ones (thread-safe)."""

    def __init__(self, plan: DownloadPlan, dest: Path) -> None:
        self.plan = plan
        self.dest = dest
        self._lock = threading.Lock()
        self._done = {p: h for p, h in read_verified(dest).items() if plan.etags.get(p) == h}

    def check(self, path: str) -> str | None:
        """None when `path` on disk is what the Hub has (and records it), else its actual hash.
        Files the Hub lists no hash for are trusted by their size."""
        expected = self.plan.etags.get(path)
        if expected is None:
            return None
        actual = hub_content_hash(self.dest / path, expected)
        if actual is not None and actual != expected:
            return actual
        self.record(path)
        return None

    def record(self, path: str) -> None:
        """Record that `path` on disk hashed to what the Hub lists."""
        expected = self.plan.etags[path]
        with self._lock:
            self._done[path] = expected
            # Not fsync'd: losing it in a power cut only means hashing those files again.
            text = json.dumps(self._done, indent=1, sort_keys=True) + "\n"
            atomic_write_text(self.dest / VERIFIED, text, durable=False)

    def discard(self, path: str) -> None:
        self.discard_in(self.dest, path)
        with self._lock:
            self._done.pop(path, None)

    @staticmethod
    def discard_in(dest: Path, path: str) -> None:
        """Delete a bad copy of `path`, and huggingface_hub's record of it, so no run trusts it."""
        for stale in (dest / path, dest / HF_STATE_DIR / "download" / f"{path}.metadata"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def check_target(dest: Path, repo_id: str) -> None:
    """Refuse a folder that holds anything but an earlier download of `repo_id` (which resumes):
    files of the user's would be overwritten, and another model's files would be mixed in (vLLM
    reads an old shard index left beside a new single-file model)."""
    try:
        entries = sorted(os.listdir(dest))
    except FileNotFoundError:
        return
    except OSError as error:
        raise ModelwizError(
            f"cannot read {dest}: {error.strerror}", hint="choose a folder you can write to for --to"
        ) from None
    if not entries or (entries == [HF_STATE_DIR.parts[0]] and read_marker(dest) is None):
        return  # empty, or only the state of an attempt that fetched nothing at the top
    held = held_model(dest)
    if held == repo_id:
        return
    if held is None and (Path(dest) / LOCK).exists():
        return  # an unfinished download by an older modelwiz, which recorded nothing more
    if held is not None:
        raise UsageError(
            f"{dest} holds a download of {held}, not {repo_id}",
            hint="choose another --to folder, or delete that one first",
        )
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise UsageError(
        f"{dest} is not empty (it holds {shown})",
        hint="choose a new or empty folder for --to; only an earlier download of the same model is resumed there",
    )


def _record_start(dest: Path, plan: DownloadPlan) -> None:
    """Say which model this folder holds (before any byte), and delete files an earlier download of
    it (another revision) left that the new one does not have."""
    earlier: dict = {}
    for record in (MARKER, STARTED):
        try:
            data = json.loads((dest / record).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            earlier.update(data["files"])
    for path in earlier:
        if path not in plan.files and "/" not in path and not path.startswith("."):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                (dest / path).unlink()
    data = {"repo_id": plan.repo_id, "revision": plan.revision, "sha": plan.sha, "files": plan.files}
    (dest / STARTED).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / STARTED, json.dumps(data, indent=1, sort_keys=True) + "\n")


class _DestLock:
    """One download per folder at a time (flock; released by the kernel if the process dies)."""

    def __init__(self, dest: Path) -> None:
        self.path = dest / LOCK
        self.fd: int | None = None

    def __enter__(self) -> _DestLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ModelwizError(
                f"another modelwiz download into {self.path.parent.parent.parent} is running",
                hint="wait for it to finish (or stop it), then run again",
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock


def _clean_stale_partials(dest: Path, plan: DownloadPlan) -> int:
    """Delete temp files a killed run left (huggingface_hub never reuses them), and partial LFS files
    of content this download does not fetch (another commit's). Returns bytes freed."""
    stale = list((dest / HF_STATE_DIR / "download").rglob("*.incomplete"))
    wanted = {dest / PARTIAL_DIR / partial_name(p, plan.etags[p]) for p in plan.partial}
    stale += [p for p in (dest / PARTIAL_DIR).rglob(f"*{PART_SUFFIX}") if p not in wanted]
    freed = 0
    for tmp in stale:
        try:
            freed += tmp.stat().st_size
            tmp.unlink()
        except OSError:
            continue
    return freed


# -- progress ----------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised inside a download thread to abort it (cancel, or another file failed)."""


class _Tracker:
    """Aggregates per-file byte counts from many threads into monotonic ProgressEvents."""

    def __init__(
        self,
        plan: DownloadPlan,
        on_progress: ProgressCallback,
        stop: threading.Event,
        cancel: threading.Event | None = None,
        clock=time.monotonic,
    ) -> None:
        self.plan = plan
        self.on_progress = on_progress
        self.stop = stop
        self.cancel = cancel
        self.task = f"download {plan.repo_id}"
        self._lock = threading.Lock()
        self._bytes = {p: (s if p in plan.present else plan.partial.get(p, 0)) for p, s in plan.files.items()}
        self._done_files = set(plan.present)
        self._fetched = 0
        self._meter = RateMeter(clock=clock)
        self._clock = clock
        self._last_emit = float("-inf")
        self._last_done = -1
        self.current: str | None = None

    def should_stop(self) -> bool:
        return self.stop.is_set() or (self.cancel is not None and self.cancel.is_set())

    @property
    def done_bytes(self) -> int:
        return sum(self._bytes.values())

    @property
    def kept_bytes(self) -> int:
        """Bytes on disk that a next run keeps: the whole files, and what the partial LFS files hold
        (read from disk, once the downloads stopped)."""
        with self._lock:
            kept = sum(self.plan.files[p] for p in self._done_files)
            partial = _partials(self.plan.dest, self.plan.files, self.plan.etags, frozenset(self._done_files))
        return kept + sum(partial.values())

    def advance(self, path: str, file_bytes: int) -> None:
        """`path` has `file_bytes` on disk now (from a progress bar; may go back on a restart)."""
        with self._lock:
            size = self.plan.files[path]
            before = self._bytes[path]
            now = min(size, max(before, file_bytes))
            if now > before:
                self._bytes[path] = now
                self._fetched += now - before
                self._meter.add(self._fetched)
            self.current = path
            self._emit(force=False)

    def file_done(self, path: str) -> None:
        with self._lock:
            size = self.plan.files[path]
            if self._bytes[path] < size:
                self._fetched += size - self._bytes[path]
                self._bytes[path] = size
                self._meter.add(self._fetched)
            self._done_files.add(path)
            self._emit(force=True)

    def emit(self, *, finished: bool = False, message: str | None = None) -> None:
        with self._lock:
            self._emit(force=True, finished=finished, message=message)

    def _emit(self, *, force: bool, finished: bool = False, message: str | None = None) -> None:
        now = self._clock()
        if not force and now - self._last_emit < EMIT_INTERVAL_S:
            return
        done = self.done_bytes
        if done < self._last_done:  # cannot happen (per-file max); keep the promise anyway
            done = self._last_done
        self._last_emit, self._last_done = now, done
        total = self.plan.total_bytes
        self.on_progress(
            ProgressEvent(
                task=self.task,
                done_bytes=done,
                total_bytes=total,
                current=None if finished else self.current,
                files_done=len(self._done_files),
                files_total=len(self.plan.files),
                rate_bytes_per_s=self._meter.rate(),
                eta_s=0.0 if finished else self._meter.eta(done, total),
                finished=finished,
                message=message,
            )
        )

    def bar_class(self, path: str):
        """A tqdm stand-in for huggingface_hub's `tqdm_class=` that reports into this tracker.

        huggingface_hub only needs the members below from a class that is not a tqdm subclass
        (file_download.http_get; utils/_xet_progress_reporting for Xet, which makes two bars).
        Raising from update() aborts that file's download; huggingface_hub removes its temp file.
        """
        tracker = self

        class Bar:
            def __init__(self, *args, total=None, initial=0, desc=None, **kwargs) -> None:
                self.n = initial or 0
                self.total = total
                self.desc = desc
                self.disable = False
                self.format_dict = {"rate": None, "n": self.n, "total": total}

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()
                return False

            def update(self, n=1):
                if tracker.should_stop():
                    raise _Stop()
                self.n += n or 0
                tracker.advance(path, self.n)
                return True

            def close(self):
                return None

            def refresh(self, *args, **kwargs):
                return None

            def reset(self, total=None):
                self.n = 0
                if total is not None:
                    self.total = total

            def set_description(self, desc=None, refresh=True):
                self.desc = desc

            set_description_str = set_description

            def set_postfix_str(self, s="", refresh=True):
                return None

        return Bar


# -- download ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadResult:
    path: Path  # the folder (= dest)
    sha: str  # commit the files come from
    files: dict[str, int] = field(default_factory=dict)  # repo path -> size
    bytes: int = 0  # total size of the files
    fetched_bytes: int = 0  # fetched by this run (0: all were on disk)
    skipped: tuple[str, ...] = ()
    offline: bool = False  # HF_HUB_OFFLINE: the folder was used as it is
    repo_id: str = ""


def download_model(
    repo_id: str,
    dest: Path,
    *,
    revision: str | None = None,
    plan: DownloadPlan | None = None,
    on_progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
    token: str | None = None,
    max_workers: int = MAX_WORKERS,
) -> DownloadResult:
    """Download what vLLM needs of `repo_id` into `dest`; resume what an earlier run started.

    `plan`: one made earlier for this repo and folder (`plan_download`, `plan_from_model`), so the
    Hub is not asked again; its commit is fetched, and what is on disk is counted again now.

    Raises ModelwizError subclasses (see wizard.hub), ModelwizError when the disk is too small
    (nothing is fetched then), and Cancelled when `cancel` is set or on Ctrl-C (finished files stay).
    """
    from wizard.hub import check_repo_id, is_offline

    repo_id = check_repo_id(repo_id)
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder", hint="choose a folder for --to")
    if is_offline():
        return _offline_result(repo_id, dest, revision, on_progress)
    check_target(dest, repo_id)
    try:
        (dest / STATE_DIR).mkdir(parents=True, exist_ok=True)
        if held_model(dest) is None:
            atomic_write_text(dest / STARTED, json.dumps({"repo_id": repo_id, "files": {}}) + "\n")
    except OSError as error:
        raise ModelwizError(
            f"cannot write to {dest}: {error.strerror}", hint="choose a folder you can write to for --to"
        ) from None
    with _DestLock(dest):
        if plan is None:
            plan = plan_download(repo_id, dest, revision=revision, token=token)
        else:
            plan = _as_on_disk(replace(plan, dest=dest))
        _record_start(dest, plan)
        marker = read_marker(dest)
        if marker and marker.get("sha") == plan.sha and marker["files"] == plan.files and is_complete(dest):
            stop = threading.Event()
            tracker = _Tracker(plan, on_progress, stop)
            tracker.emit(finished=True, message="already on disk")
            return _result(plan, 0)
        check_disk(plan)
        _remove_marker(dest)  # from here on the folder is "in progress" until the end
        _clean_stale_partials(dest, plan)
        fetched = _fetch_all(plan, dest, on_progress, cancel, token, max_workers)
        _verify(plan, dest)
        _write_marker(dest, plan)
        return _result(plan, fetched)


def _result(plan: DownloadPlan, fetched: int) -> DownloadResult:
    return DownloadResult(
        path=plan.dest,
        sha=plan.sha,
        files=dict(plan.files),
        bytes=plan.total_bytes,
        fetched_bytes=fetched,
        skipped=plan.skipped,
        repo_id=plan.repo_id,
    )


# huggingface_hub reads and reports in 10 MiB chunks: on a slow link Cancel, Ctrl-C and the
# progress bar would wait for each one. 1 MiB keeps them responsive at no measurable cost
# (benchmarks/download.py).
CHUNK_BYTES = 1024 * 1024


def _fetch_all(plan, dest, on_progress, cancel, token, max_workers) -> int:
    from huggingface_hub import constants, hf_hub_download, hf_hub_url

    from wizard.hub import hub_endpoint, redact_url, translate_error

    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)

    stop = threading.Event()
    tracker = _Tracker(plan, on_progress, stop, cancel)
    resumed = plan.bytes_on_disk
    tracker.emit(message=f"resuming: {format_bytes(resumed)} already on disk" if resumed else None)
    todo = [p for p in plan.files if p not in plan.present]
    # Biggest first: the long files start early, the small ones fill the gaps.
    todo.sort(key=lambda p: -plan.files[p])

    verifier = _Verifier(plan, dest)
    todo += [p for p in plan.present if p in plan.etags and p not in plan.verified]

    def fetch(path: str) -> None:
        if tracker.should_stop():
            raise _Stop()
        if path in plan.present:  # whole on disk, but not checked yet (a killed run's last files)
            if verifier.check(path) is None:
                tracker.file_done(path)
                return
            verifier.discard(path)
        actual = None
        expected = plan.etags.get(path)
        for _attempt in range(FETCH_ATTEMPTS):
            if is_sha256(expected):
                actual = fetch_resumable(
                    hf_hub_url(plan.repo_id, path, revision=plan.sha),
                    part=dest / PARTIAL_DIR / partial_name(path, expected),
                    target=dest / path,
                    size=plan.files[path],
                    sha256=expected,
                    token=token,
                    tqdm_class=tracker.bar_class(path),
                )
                if actual is None:
                    verifier.record(path)
            else:
                hf_hub_download(
                    plan.repo_id,
                    path,
                    revision=plan.sha,
                    local_dir=dest,
                    token=token,
                    tqdm_class=tracker.bar_class(path),
                )
                actual = verifier.check(path)
            if actual is None:
                tracker.file_done(path)
                return
            verifier.discard(path)
        raise CorruptFile(
            f"{path} of {plan.repo_id} arrived damaged {FETCH_ATTEMPTS} times: its hash is {actual},"
            f" the Hub lists {plan.etags[path]}",
            hint=f"{redact_url(hub_endpoint())} (or a proxy on the way) serves bad bytes; run again later,"
            " or check HF_ENDPOINT and proxy settings (what arrived is kept)",
        )

    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="modelwiz-download")
    futures = [pool.submit(fetch, p) for p in todo]
    failure: BaseException | None = None
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        for fut in futures:
            if fut.done() and not fut.cancelled() and fut.exception() is not None:
                failure = fut.exception()
                if not isinstance(failure, _Stop):
                    break
    except KeyboardInterrupt:
        failure = KeyboardInterrupt()
    finally:
        stop.set()  # no-op on success: every file is done
        pool.shutdown(wait=True, cancel_futures=True)
    cancelled = isinstance(failure, (_Stop, KeyboardInterrupt)) or (cancel is not None and cancel.is_set())
    if failure is not None or cancelled:
        kept = tracker.kept_bytes
        if cancelled:
            raise Cancelled(
                f"download of {plan.repo_id} stopped; {format_bytes(kept)} of {format_bytes(plan.total_bytes)}"
                f" kept in {dest}",
                hint="run the same command again to resume",
            )
        assert failure is not None  # not cancelled: a worker failed
        error = translate_error(failure, plan.repo_id, revision=plan.revision)
        if not error.hint or "again" not in error.hint:
            error.hint = ((error.hint + "; ") if error.hint else "") + "what arrived is kept: run again to resume"
        raise error from None
    tracker.emit(finished=True)
    return plan.bytes_to_fetch


def _verify(plan: DownloadPlan, dest: Path) -> None:
    for path, size in plan.files.items():
        try:
            actual = (dest / path).stat().st_size
        except OSError:
            actual = None
        if actual != size:
            raise ModelwizError(
                f"{path} in {dest} has {format_bytes(actual)}, the Hub says {format_bytes(size)}",
                hint="run again to fetch it again",
            )


@dataclass(frozen=True)
class FolderCheck:
    """What `verify_folder` found: every file listed when the download finished, re-hashed."""

    folder: Path
    checked: tuple[str, ...] = ()  # files whose content matched the recorded hash
    sized: tuple[str, ...] = ()  # files with no recorded hash, checked by size only
    bad: tuple[tuple[str, str], ...] = ()  # (file, what is wrong with it)
    bytes: int = 0
    repo_id: str = ""  # what was downloaded, at which commit
    sha: str = ""

    @property
    def ok(self) -> bool:
        return not self.bad


def verify_folder(dest: Path) -> FolderCheck:
    """Re-check a finished download against what was recorded: each file's size, and its content
    hash where the Hub listed one. Raises ModelwizError when `dest` holds no finished download."""
    dest = Path(dest)
    marker = read_marker(dest)
    if marker is None:
        raise ModelwizError(
            f"{dest} holds no finished modelwiz download, so nothing was recorded to check against",
            hint="run `modelwiz download` (or `modelwiz add`) to finish it first",
        )
    recorded = marker.get("hashes")
    hashes = recorded if isinstance(recorded, dict) else read_verified(dest)
    checked, sized, bad = [], [], []
    total = 0
    for path, size in sorted(marker["files"].items()):
        target = dest / path
        try:
            actual_size = target.stat().st_size
        except OSError:
            bad.append((path, "is missing"))
            continue
        total += actual_size
        if actual_size != size:
            bad.append((path, f"has {format_bytes(actual_size)}, {format_bytes(size)} were downloaded"))
            continue
        expected = hashes.get(path)
        if not isinstance(expected, str):
            sized.append(path)
            continue
        try:
            actual = hub_content_hash(target, expected)
        except OSError as error:
            bad.append((path, f"cannot be read ({error.strerror})"))
            continue
        if actual is not None and actual != expected:
            bad.append((path, "does not match the Hub's hash (its bytes changed)"))
        else:
            checked.append(path)
    return FolderCheck(
        dest, tuple(checked), tuple(sized), tuple(bad), total, str(marker.get("repo_id") or ""), str(marker["sha"])
    )


def forget_bad_files(check: FolderCheck) -> None:
    """Delete the damaged files `check` found, so the next download of the folder fetches them."""
    for path, _why in check.bad:
        _Verifier.discard_in(check.folder, path)
    if check.bad:
        _remove_marker(check.folder)


def _offline_result(repo_id: str, dest: Path, revision: str | None, on_progress: ProgressCallback) -> DownloadResult:
    from wizard.hub import OfflineNotCached

    marker = read_marker(dest)
    if (
        marker is None
        or not is_complete(dest)
        or marker.get("repo_id") != repo_id
        or (revision and revision not in (marker.get("revision"), marker.get("sha")))
    ):
        raise OfflineNotCached(
            f"offline mode (HF_HUB_OFFLINE=1) and {dest} does not hold a complete download of {repo_id}",
            hint="unset HF_HUB_OFFLINE to download it",
        )
    files = {p: int(s) for p, s in marker["files"].items()}
    total = sum(files.values())
    on_progress(
        ProgressEvent(
            task=f"download {repo_id}",
            done_bytes=total,
            total_bytes=total,
            files_done=len(files),
            files_total=len(files),
            finished=True,
            message="offline (HF_HUB_OFFLINE=1): using the copy already on disk",
        )
    )
    return DownloadResult(path=dest, sha=marker["sha"], files=files, bytes=total, offline=True, repo_id=repo_id)
