"""A Triton model repository on disk: open it, list its models, write and remove modelwiz's models.

Layout (per model): `<repository>/<name>/config.pbtxt`, `<name>/1/model.json`, and the weights in
`<name>/<weights folder>/`. The manifest (wizard.manifest) records what modelwiz wrote.

Rules this module keeps:
- Every write is atomic (wizard.fsutil); the manifest is saved before and after file writes so a
  crash leaves either the old or the new file and a manifest that explains both.
- A file whose hash is not the one modelwiz recorded was edited by hand: it is never overwritten;
  modelwiz's version goes beside it as `<file>.modelwiz-new`.
- Models modelwiz did not make (a folder with a config.pbtxt and no manifest entry) are listed
  and parsed, never modified.
- A model whose download is incomplete is never listed as ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from wizard.download_records import held_model
from wizard.errors import ModelwizError, UsageError
from wizard.fsutil import (
    atomic_write_text,
    file_sha256_or_none,
    is_temp_file,
    remove_stale_temps,
    sha256_text,
)
from wizard.manifest import (
    MANIFEST_NAME,
    STATE_COMPLETE,
    STATE_DOWNLOADING,
    STATE_REMOVING,
    Manifest,
    ManifestModel,
    load_manifest,
    save_manifest,
)
from wizard.model_config import (
    CONFIG_FILE,
    MODEL_JSON,
    ConfigError,
    describe_config,
    parse_config_pbtxt,
    plan_devices,
    render_config_pbtxt,
    render_model_json,
    vllm_problems,
)
from wizard.plan_types import ModelPlan, sort_devices

NEW_SUFFIX = ".modelwiz-new"
REMOVED_SUFFIX = ".modelwiz-removed"
REPOSITORY_ENV = "MODEL_REPOSITORY"
LOCK_NAME = ".modelwiz.lock"  # flock'd by whoever changes the repository
LOCK_MODE = 0o644  # readable is enough for another user to take the lock

# Model states as listed.
READY = "ready"  # complete: weights and files in place
DOWNLOADING = "downloading"  # added, weights not complete yet: never loaded
REMOVING = "removing"  # a removal was interrupted
MISSING = "missing"  # in the manifest, folder gone
FOREIGN = "foreign"  # not made by modelwiz; listed, never modified
BROKEN = "broken"  # modelwiz's model, but a file is missing or unreadable
KEPT = "kept"  # what `remove --keep-weights` leaves: a folder with a download in it, no model files

WeightsChecker = Callable[[Path], bool]


@dataclass(frozen=True)
class RepoModel:
    """One model as found on disk."""

    name: str
    path: Path
    state: str  # READY, DOWNLOADING, ... (above)
    entry: ManifestModel | None = None  # modelwiz's record; None for a foreign model
    config_summary: str | None = None  # "vllm, KIND_GPU x1 gpus [0]"
    problems: tuple[str, ...] = ()  # what Triton / vLLM would reject, or what is off
    edited: tuple[str, ...] = ()  # files changed by hand (kept as they are)
    waiting: tuple[str, ...] = ()  # modelwiz's versions waiting beside them

    @property
    def managed(self) -> bool:
        return self.entry is not None

    @property
    def ready(self) -> bool:
        return self.state == READY


@dataclass(frozen=True)
class WriteReport:
    """What writing one model's files did."""

    name: str
    written: tuple[str, ...] = ()  # files replaced or created
    unchanged: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # hand-edited: kept, modelwiz's version written beside it
    notes: tuple[str, ...] = ()  # explanations for the user


def _download_held_in(folder: Path) -> str | None:
    """The Hub model whose download a folder of the repository holds, in the weights subfolder an add
    of that model uses (`weights_folder_for`), or None."""
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    for sub in subs:
        source = held_model(sub)
        if source is not None and sub.name == weights_folder_for(source):
            return source
    return None


def _weights_complete_default(path: Path) -> bool:
    """A weights folder modelwiz finished (the manifest says so) must still be there, not empty."""
    try:
        return path.is_dir() and any(path.iterdir())
    except OSError:
        return False


def _acquire(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path` (created if missing), or None when another
    process holds it. Retries when the file was replaced while we waited (a remover unlinked it)."""
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, LOCK_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _model_json_problems(path: Path) -> list[str]:
    """A hand-edited model.json that vLLM's backend could not even read (it json.loads it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        return [f"{MODEL_JSON} is not readable JSON ({type(error).__name__})"]
    return [] if isinstance(data, dict) else [f"{MODEL_JSON} is not a JSON object"]


def _only_entry(folder: Path, name: str) -> bool:
    try:
        return os.listdir(folder) == [name]
    except OSError:
        return False


def check_weights_folder(name: str) -> str:
    """A weights folder name that stays inside the model folder and is not a Triton version."""
    if (
        not name
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or name.startswith(".")
        or name.isdigit()  # Triton would take a numeric folder for a model version
        or name in (CONFIG_FILE, "1")
    ):
        raise UsageError(f"{name!r} cannot be a weights folder name")
    return name


def weights_folder_for(source: str) -> str:
    """`meta-llama/Llama-2-7b-hf` -> `Llama-2-7b-hf`; a numeric or odd name gets a safe form."""
    import re

    base = source.rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip(".-") or "weights"
    if base.isdigit():
        base = f"{base}-weights"
    return check_weights_folder(base)


@contextlib.contextmanager
def repository_lock(root: Path) -> Iterator[None]:
    """Hold the repository at `root` for one change (plan, download, write) at a time. Two modelwiz
    processes adding at once would each plan into the same free memory and save over each
    other's manifest. The lock file lives in the repository itself, so every user and every cache
    (`sudo modelwiz add` beside `modelwiz add`) takes the same one; whoever holds it reads the
    manifest after taking it. A repository this creates is removed again when nothing else was
    written into it."""
    root = Path(root)
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = _acquire(root / LOCK_NAME)
    except OSError as error:
        raise ModelwizError(
            f"cannot lock {root / LOCK_NAME}: {error.strerror}",
            hint="check that the repository folder is writable",
        ) from None
    if fd is None:
        raise ModelwizError(
            f"another modelwiz is changing {root} right now",
            hint="wait for it to finish, then run again",
        )
    try:
        yield
    finally:
        if created and _only_entry(root, LOCK_NAME):
            with contextlib.suppress(OSError):
                (root / LOCK_NAME).unlink()
                root.rmdir()
        os.close(fd)


class Repository:
    """A model repository folder and its manifest. Methods that change it save as they go."""

    def __init__(self, root: Path, manifest: Manifest, *, weights_complete: WeightsChecker | None = None):
        self.root = root
        self.manifest = manifest
        self._weights_complete = weights_complete or _weights_complete_default

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        root: Path | str,
        *,
        create: bool = False,
        weights_complete: WeightsChecker | None = None,
    ) -> Repository:
        root = Path(root).expanduser()
        if not root.is_absolute():
            root = Path.cwd() / root
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is not a folder", hint="give --repository a folder")
        # A missing one is created on the first save, so a refused add leaves nothing behind.
        if not root.exists() and not create:
            raise UsageError(
                f"model repository {root} does not exist",
                hint="check --repository / $MODEL_REPOSITORY, or add a model with `modelwiz add`",
            )
        manifest = load_manifest(root) or Manifest()
        return cls(root, manifest, weights_complete=weights_complete)

    def save(self, manifest: Manifest) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.manifest = save_manifest(self.root, manifest)
        except OSError as error:
            raise ModelwizError(
                f"cannot write {self.root / MANIFEST_NAME}: {error.strerror}",
                hint="check that the repository folder is writable",
            ) from None

    # ------------------------------------------------------------------ paths
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this repository for one change (see `repository_lock`), with the manifest re-read
        once held, so the change starts from what the last writer saved."""
        with repository_lock(self.root):
            self.manifest = load_manifest(self.root) or Manifest()
            yield

    def model_dir(self, name: str) -> Path:
        return self.root / name

    def weights_dir(self, entry: ManifestModel) -> Path:
        return self.model_dir(entry.name) / entry.weights

    def weights_path_in_container(self, entry: ManifestModel) -> str:
        return f"{self.manifest.mount_point.rstrip('/')}/{entry.name}/{entry.weights}"

    # ------------------------------------------------------------------ reading
    def folder_names(self) -> tuple[str, ...]:
        """Every folder at the top of the repository (candidate models), sorted."""
        try:
            entries = sorted(self.root.iterdir(), key=lambda p: p.name)
        except FileNotFoundError:
            return ()
        return tuple(p.name for p in entries if p.is_dir() and not p.name.startswith(".") and not is_temp_file(p.name))

    def existing_ancestor(self) -> Path:
        """The repository folder, or its nearest existing parent before it is created."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    def kept_weights(self) -> dict[str, str]:
        """The folders `remove --keep-weights` left (no model files, not in the manifest), with the
        Hub model each holds the weights of: folder name -> source."""
        found = {name: self._kept_source(name) for name in self.folder_names()}
        return {name: source for name, source in found.items() if source is not None}

    def _kept_source(self, name: str) -> str | None:
        """The source whose weights folder `name` keeps, when it is no model (not in the manifest, no
        config.pbtxt)."""
        if self.manifest.get(name) is not None or (self.model_dir(name) / CONFIG_FILE).exists():
            return None
        return _download_held_in(self.model_dir(name))

    def taken_names(self) -> frozenset[str]:
        """Names a new model cannot take: every entry of the repository folder (files such as
        modelwiz.toml included, since the model folder could not be made) and the manifest's."""
        try:
            entries = frozenset(os.listdir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            entries = frozenset()
        return entries | frozenset(self.manifest.names)

    def managed_plans(self) -> tuple[ModelPlan, ...]:
        """The plans of modelwiz's models (what a joint plan must keep room for)."""
        return tuple(m.plan for m in self.manifest.models if m.state != STATE_REMOVING)

    def used_devices(self, plans: Iterable[ModelPlan] | None = None) -> tuple[str, ...]:
        """All devices the repository's models use, in container order (sort_devices)."""
        plans = self.managed_plans() if plans is None else plans
        return sort_devices({d for p in plans for d in plan_devices(p)})

    def file_status(self, entry: ManifestModel, rel: str) -> str:
        """'ok' (modelwiz's own), 'edited' (by hand), 'missing', or 'unrecorded'."""
        current = file_sha256_or_none(self.model_dir(entry.name) / rel)
        if current is None:
            return "missing"
        known = {entry.files.get(rel), entry.pending.get(rel)}
        # A user who moved modelwiz's suggested version into place has accepted it.
        known |= {entry.files.get(rel + NEW_SUFFIX), entry.pending.get(rel + NEW_SUFFIX)}
        known.discard(None)
        if current in known:
            return "ok"
        return "edited" if known else "unrecorded"

    def models(self) -> tuple[RepoModel, ...]:
        names = sorted(set(self.folder_names()) | set(self.manifest.names))
        return tuple(self._inspect(name) for name in names)

    def model(self, name: str) -> RepoModel | None:
        if name not in set(self.folder_names()) | set(self.manifest.names):
            return None
        return self._inspect(name)

    def ready_models(self) -> tuple[str, ...]:
        """The models a server may load: modelwiz's complete ones, and foreign ones that parse."""
        return tuple(m.name for m in self.models() if m.ready)

    def _inspect(self, name: str) -> RepoModel:
        path = self.model_dir(name)
        entry = self.manifest.get(name)
        problems: list[str] = []
        summary = None
        config_text = None
        try:
            config_text = (path / CONFIG_FILE).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"config.pbtxt cannot be read: {error}")
        if config_text is not None:
            try:
                config = parse_config_pbtxt(config_text)
                summary = describe_config(config)
                tp = entry.plan.tensor_parallel_size if entry else None
                problems.extend(vllm_problems(config, tensor_parallel_size=tp, strict=False))
            except ConfigError as error:
                problems.append(str(error))

        if entry is None:
            source = self._kept_source(name)
            if source is not None:
                problems.append(
                    f"the weights of {source}, kept by `modelwiz remove`: `modelwiz add {source}` uses them"
                    f" again; delete {path} when they are no longer needed"
                )
                return RepoModel(name, path, KEPT, None, None, tuple(problems))
            if config_text is None:
                problems.append("no config.pbtxt: not a model (Triton may refuse to start on it)")
                return RepoModel(name, path, BROKEN, None, summary, tuple(problems))
            return RepoModel(name, path, FOREIGN if not problems else BROKEN, None, summary, tuple(problems))

        if not path.is_dir():
            return RepoModel(name, path, MISSING, entry, None, ("the model folder is gone",))
        edited: list[str] = []
        waiting: list[str] = []
        for rel in (CONFIG_FILE, MODEL_JSON):
            status = self.file_status(entry, rel)
            if status == "edited":
                edited.append(rel)
            elif status == "missing" and entry.state == STATE_COMPLETE:
                problems.append(f"{rel} is missing")
            if (path / (rel + NEW_SUFFIX)).exists():
                waiting.append(rel + NEW_SUFFIX)
        if MODEL_JSON in edited:
            problems.extend(_model_json_problems(path / MODEL_JSON))
        if entry.state == STATE_REMOVING:
            state = REMOVING
        elif entry.state != STATE_COMPLETE:
            state = DOWNLOADING
        elif not self._weights_complete(self.weights_dir(entry)):
            state = DOWNLOADING
            problems.append("the weights are incomplete")
        elif problems:
            state = BROKEN
        else:
            state = READY
        return RepoModel(name, path, state, entry, summary, tuple(problems), tuple(edited), tuple(waiting))

    # ------------------------------------------------------------------ writing
    def record(self, entry: ManifestModel) -> None:
        """Add or replace a model's manifest entry (saved at once)."""
        self.save(self.manifest.with_model(entry))

    def render_files(self, entry: ManifestModel, devices: Sequence[str], vllm_version: str) -> dict[str, str]:
        """The files modelwiz wants for `entry`, given all devices the repository uses."""
        return {
            CONFIG_FILE: render_config_pbtxt(entry.plan, devices, vllm_version=vllm_version),
            MODEL_JSON: render_model_json(
                entry.plan, model_path=self.weights_path_in_container(entry), vllm_version=vllm_version
            ),
        }

    def write_models(
        self,
        entries: Sequence[ManifestModel],
        *,
        vllm_version: str,
        devices: Sequence[str] | None = None,
        complete: Mapping[str, str | None] | None = None,
    ) -> tuple[WriteReport, ...]:
        """Write (or refresh) the files of `entries`, whose plans are the final ones.

        `devices` is every device the repository uses after this change (default: from the
        manifest plus `entries`). `complete` maps names to a revision for models whose weights
        are complete now; they are marked complete once their files are in place.

        Order: (1) manifest with the new plans and the hashes about to be written (pending),
        (2) the files, atomically one by one, (3) manifest with those hashes as the files'.
        """
        complete = dict(complete or {})
        by_name = {e.name: e for e in entries}
        if devices is None:
            others = [m.plan for m in self.manifest.models if m.name not in by_name and m.state != STATE_REMOVING]
            devices = self.used_devices(others + [e.plan for e in entries])
        planned: list[tuple[ManifestModel, dict[str, str], dict[str, str]]] = []
        for entry in entries:
            wanted = self.render_files(entry, devices, vllm_version)
            targets: dict[str, str] = {}
            for rel, text in wanted.items():
                status = self.file_status(entry, rel)
                current = self.model_dir(entry.name) / rel
                if status == "unrecorded" and file_sha256_or_none(current) == sha256_text(text):
                    status = "ok"
                target = rel if status in ("ok", "missing") else rel + NEW_SUFFIX
                targets[target] = text
            pending = {rel: sha256_text(text) for rel, text in targets.items()}
            planned.append((entry, targets, pending))

        if all(self._up_to_date(entry, targets, complete) for entry, targets, _ in planned):
            return tuple(WriteReport(e.name, unchanged=tuple(t)) for e, t, _ in planned)

        # Leftovers of a crashed earlier write (never read by Triton, but clutter).
        remove_stale_temps(self.root)
        for entry, _targets, _pending in planned:
            for folder in (self.model_dir(entry.name), self.model_dir(entry.name) / "1"):
                remove_stale_temps(folder)

        # (1) write-ahead: the plans, and the hashes the files are about to have
        manifest = self.manifest
        for entry, _targets, pending in planned:
            manifest = manifest.with_model(replace(entry, pending=pending))
        self.save(manifest)

        # (2) the files
        reports: list[WriteReport] = []
        for entry, targets, _pending in planned:
            folder = self.model_dir(entry.name)
            (folder / "1").mkdir(parents=True, exist_ok=True)
            written, unchanged, kept, notes = [], [], [], []
            for rel, text in targets.items():
                path = folder / rel
                if file_sha256_or_none(path) == sha256_text(text):
                    unchanged.append(rel)
                    continue
                atomic_write_text(path, text)
                written.append(rel)
                if rel.endswith(NEW_SUFFIX):
                    real = rel[: -len(NEW_SUFFIX)]
                    kept.append(real)
                    notes.append(
                        f"{entry.name}/{real} was edited by hand and is kept as it is; modelwiz's "
                        f"version is beside it in {entry.name}/{rel} (compare them, and move it over "
                        "yours to take it)"
                    )
            # A suggestion made obsolete (the real file is modelwiz's own again) goes away.
            for rel in (CONFIG_FILE, MODEL_JSON):
                stale = folder / (rel + NEW_SUFFIX)
                if rel in targets and stale.exists() and self._is_own(entry, rel + NEW_SUFFIX, stale):
                    stale.unlink()
            reports.append(WriteReport(entry.name, tuple(written), tuple(unchanged), tuple(kept), tuple(notes)))

        # (3) commit: pending hashes become the files', complete models are marked
        manifest = self.manifest
        for entry, _targets, pending in planned:
            files = {k: v for k, v in entry.files.items() if k in (CONFIG_FILE, MODEL_JSON)}
            files.update(pending)
            updated = replace(entry, files=files, pending={})
            if entry.name in complete:
                updated = replace(updated, state=STATE_COMPLETE, revision=complete[entry.name] or entry.revision)
            manifest = manifest.with_model(updated)
        self.save(manifest)
        return tuple(reports)

    def _up_to_date(self, entry: ManifestModel, targets: Mapping[str, str], complete: Mapping[str, object]) -> bool:
        """Nothing to do for `entry`: same record, files on disk already what we would write."""
        if self.manifest.get(entry.name) != entry or entry.pending:
            return False
        if entry.name in complete and (
            not entry.complete or (complete[entry.name] or entry.revision) != entry.revision
        ):
            return False
        folder = self.model_dir(entry.name)
        return all(
            entry.files.get(rel) == sha256_text(text) == file_sha256_or_none(folder / rel)
            for rel, text in targets.items()
        )

    def _is_own(self, entry: ManifestModel, rel: str, path: Path) -> bool:
        current = file_sha256_or_none(path)
        return current is not None and current in {entry.files.get(rel), entry.pending.get(rel)}

    # ------------------------------------------------------------------ removing
    def remove_model(self, name: str, *, delete_weights: bool) -> tuple[str, ...]:
        """Take a modelwiz model out. Returns notes for the user.

        config.pbtxt goes first (so Triton no longer sees a model), hand-edited files are kept
        renamed `<file>.modelwiz-removed`, weights are deleted only when asked. The manifest marks
        the model `removing` first, so an interrupted removal is visible and can be rerun.
        """
        entry = self.manifest.get(name)
        if entry is None:
            if name in self.folder_names():
                raise ModelwizError(
                    f"{name!r} was not set up by modelwiz; it is left untouched",
                    hint=f"remove {self.model_dir(name)} yourself if you no longer want it",
                )
            raise UsageError(f"no model {name!r} in {self.root}", hint="see `modelwiz status` for the names")
        self.save(self.manifest.with_model(replace(entry, state=STATE_REMOVING)))
        folder = self.model_dir(name)
        notes: list[str] = []
        for rel in (CONFIG_FILE, MODEL_JSON):
            path = folder / rel
            status = self.file_status(entry, rel)
            if status == "missing":
                continue
            if status == "ok":
                path.unlink()
            else:
                keep = path.with_name(path.name + REMOVED_SUFFIX)
                os.replace(path, keep)
                notes.append(f"{name}/{rel} was edited by hand: kept as {name}/{rel}{REMOVED_SUFFIX}")
            own_new = folder / (rel + NEW_SUFFIX)
            if own_new.exists() and self._is_own(entry, rel + NEW_SUFFIX, own_new):
                own_new.unlink()
        weights = self.weights_dir(entry)
        if delete_weights and weights.is_symlink():
            target = os.readlink(weights)
            weights.unlink()  # the link only: what it points to is not modelwiz's to delete
            notes.append(f"{weights} was a link to {target}: removed the link, the files there are kept")
        elif delete_weights:
            if weights.exists():
                shutil.rmtree(weights)
        elif weights.exists():
            notes.append(f"weights kept in {weights}")
        for sub in (folder / "1", folder):
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty: anything else there stays
        # The others are renumbered while this entry still says `removing` (its devices no longer
        # count), so a crash before the last save leaves a rerun to finish, never stale GPU ids.
        notes.extend(self.refresh_after_removal())
        self.save(self.manifest.without_model(name))
        return tuple(notes)

    def refresh_after_removal(self) -> tuple[str, ...]:
        """The remaining models' files, renumbered for the smaller device set (their config.pbtxt
        GPU ids are positions in it). Notes say what was rewritten."""
        from wizard.images import find_image

        remaining = [m for m in self.manifest.models if m.state == STATE_COMPLETE]
        info = find_image(self.manifest.image) if self.manifest.image else None
        if not remaining or info is None:
            return ()
        reports = self.write_models(remaining, vllm_version=info.vllm_release, devices=self.used_devices())
        notes = [n for r in reports for n in r.notes]
        rewritten = [r.name for r in reports if r.written]
        if rewritten:
            notes.append(
                f"{', '.join(rewritten)}: GPU numbering updated for the remaining GPUs; "
                "`modelwiz up` restarts the server with them"
            )
        return tuple(notes)


def new_entry(plan: ModelPlan, *, source: str, weights: str, revision: str | None = None) -> ManifestModel:
    """A manifest entry for a model about to be downloaded."""
    return ManifestModel(
        name=plan.name,
        source=source,
        weights=check_weights_folder(weights),
        plan=plan,
        state=STATE_DOWNLOADING,
        revision=revision,
    )


# ---------------------------------------------------------------------- the repository's location


def configured_repository() -> Path | None:
    """$MODEL_REPOSITORY, else the one remembered in the user config, else None."""
    env = os.environ.get(REPOSITORY_ENV)
    if env:
        return Path(env).expanduser()
    import tomllib

    from wizard.paths import config_file

    try:
        data = tomllib.loads(config_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ModelwizError(f"cannot read {config_file()}: {error}", hint="fix the file or delete it") from None
    except RecursionError:
        raise ModelwizError(f"{config_file()} is nested too deeply to read", hint="fix the file or delete it") from None
    value = data.get("repository")
    return Path(value).expanduser() if isinstance(value, str) and value else None


def remember_repository(path: Path) -> None:
    """Store `path` as the default repository in the user config (other settings are kept)."""
    import tomlkit

    from wizard.paths import config_file

    cfg = config_file()
    try:
        doc = tomlkit.parse(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    if doc.get("repository") == str(path):
        return
    doc["repository"] = str(path)
    cfg.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg, tomlkit.dumps(doc))


def resolve_repository(given: str | Path | None, *, ask: Callable[[], str | None] | None = None) -> Path:
    """--repository, else $MODEL_REPOSITORY, else the remembered one, else ask (when possible)."""
    if given:
        return Path(given).expanduser().absolute()
    found = configured_repository()
    if found:
        return found.absolute()
    answer = ask() if ask else None
    if answer:
        return Path(answer).expanduser().absolute()
    raise UsageError(
        "no model repository given",
        hint=f"pass --repository DIR (it is remembered) or set ${REPOSITORY_ENV}",
    )
