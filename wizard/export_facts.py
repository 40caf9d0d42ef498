"""What `modelwiz export` writes, in one shape: the container `modelwiz up` creates, plus the models.

The container is the `LaunchSpec` that `modelwiz up` runs, built by the same
`launch_inputs.build_launch_spec` from the same layers of options, so a Kubernetes Deployment or
a systemd unit never drifts from the container the workstation runs. Only the host facts differ:
the export does not ask podman (this user's rootlessness and the SELinux filesystem stand in for
what the podman service would report), and no running container is consulted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.container import ALL_DEVICES, GRPC_PORT, HTTP_PORT, METRICS_PORT, LaunchSpec
from wizard.download_records import read_marker
from wizard.errors import ModelwizError
from wizard.launch_inputs import HostFacts, build_launch_spec, read_launch_inputs
from wizard.openai_frontend import FRONTEND_MAIN
from wizard.serve_options import ServeOptions

if TYPE_CHECKING:
    from wizard.repository import Repository

TRITON_PORTS = {HTTP_PORT: "http", GRPC_PORT: "grpc", METRICS_PORT: "metrics"}
OPENAI_PORT_NAME = "openai"


@dataclass(frozen=True)
class ExportedModel:
    """One model of the repository, as a cluster needs it."""

    name: str  # the Triton model name (folder name)
    source: str  # Hugging Face repo id
    revision: str  # the commit sha that was downloaded
    weights_dir: str  # folder inside <mount>/<name>/ holding the weights
    weights_bytes: int
    config_pbtxt: str  # the repository's file, as served
    model_json: str  # the repository's file, as served
    files: tuple[str, ...] = ()  # the files to fetch (relative paths), as the workstation downloaded them


@dataclass(frozen=True)
class ServingFacts:
    """Everything an export needs: the container and the models it serves."""

    spec: LaunchSpec
    models: tuple[ExportedModel, ...]
    gpus: tuple[str, ...] = ()  # the devices the plans use (CDI ids "0", "1:0"): one GPU each
    skipped: tuple[str, ...] = ()  # "name: why", models in the repository that are not exported

    @property
    def mount_point(self) -> str:
        return self.spec.mount_point

    @property
    def gpu_count(self) -> int:
        """GPUs the server needs on one node (a MIG slice counts as one device)."""
        if self.gpus:
            return len(self.gpus)
        return len([d for d in self.spec.devices if d != ALL_DEVICES])

    def boot_command(self) -> tuple[str, ...]:
        return boot_command(self.spec.command, [m.name for m in self.models])


def format_size(n: int) -> str:
    """Bytes as podman's flags take them: `1g`, `512m`, or plain bytes."""
    for suffix, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n % factor == 0 and n >= factor:
            return f"{n // factor}{suffix}"
    return str(n)


# --- the command a container started without modelwiz runs -----------------------------------


def boot_command(command: tuple[str, ...] | list[str], models: list[str]) -> tuple[str, ...]:
    """`modelwiz up`'s server command, made to load the models by itself.

    `modelwiz up` starts Triton with `--model-control-mode=explicit` and then loads the models one
    at a time over HTTP, so vLLM engines that share a GPU never profile memory at the same time.
    A container started by systemd or Kubernetes has nobody to send those calls, so the same
    command gets `--load-model=<name>` for each model and `--model-load-thread-count=1`, which
    makes Triton itself load them one after another at startup.

    The OpenAI frontend (`main.py`, whose argparse reads `--load-model=<name>` too) has no
    `--model-load-thread-count`: its in-process server keeps the tritonserver API's default.
    """
    args = list(command)
    frontend = FRONTEND_MAIN in args
    mode = "none"
    for i, arg in enumerate(args):
        if arg.startswith("--model-control-mode="):
            mode = arg.split("=", 1)[1]
        elif arg == "--model-control-mode" and i + 1 < len(args):
            mode = args[i + 1]
    if mode == "explicit":
        present = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
        args += [f"--load-model={name}" for name in models if name not in present]
    if not frontend and not any(a.startswith("--model-load-thread-count") for a in args):
        args.append("--model-load-thread-count=1")
    return tuple(args)


# --- from the repository on disk -----------------------------------------------------------------


def weight_files(folder: Path) -> tuple[tuple[str, ...], int]:
    """The files of a finished download (relative paths, sorted) and their total size.

    The download's own completeness marker lists exactly what it fetched; without one (a folder
    filled another way) the folder's files are taken, leaving out hidden ones (download state).
    """
    marker = read_marker(folder)
    if marker:
        files = {str(k): int(v) for k, v in marker["files"].items()}
        return tuple(sorted(files)), sum(files.values())
    names: list[str] = []
    total = 0
    if not folder.is_dir():
        return (), 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        names.append(rel.as_posix())
        total += path.stat().st_size
    return tuple(names), total


def _exported_model(repo: Repository, name: str) -> tuple[ExportedModel | None, str | None]:
    """The model as a cluster needs it, or why it cannot be exported."""
    from wizard.model_config import CONFIG_FILE, MODEL_JSON

    found = repo.model(name)
    if found is None:
        return None, f"{name}: not in the repository"
    entry = found.entry
    if entry is None:
        return None, f"{name}: not made by modelwiz, so its source is unknown"
    if not found.ready:
        why = "; ".join(found.problems) or found.state
        return None, f"{name}: not ready ({why}); finish it with `modelwiz add` first"
    if not entry.revision:
        return None, (
            f"{name}: copied from the local folder {entry.source}; a cluster cannot download "
            f"it (copy it into the volume at {repo.weights_path_in_container(entry)})"
        )
    folder = repo.model_dir(name)
    config = (folder / CONFIG_FILE).read_text(encoding="utf-8")
    model_json = (folder / MODEL_JSON).read_text(encoding="utf-8")
    try:
        loads = json.loads(model_json).get("model")
    except (ValueError, AttributeError):
        return None, f"{name}: 1/model.json is not a JSON object"
    wanted = repo.weights_path_in_container(entry)
    if loads != wanted:
        return None, f"{name}: 1/model.json loads {loads!r}, not the downloaded weights at {wanted}"
    files, size = weight_files(repo.weights_dir(entry))
    if not files:
        return None, f"{name}: its weights folder {repo.weights_dir(entry)} is empty"
    return ExportedModel(
        name=name,
        source=entry.source,
        revision=entry.revision,
        weights_dir=entry.weights,
        weights_bytes=size or entry.plan.weights_bytes,
        config_pbtxt=config,
        model_json=model_json,
        files=files,
    ), None


def exportable_models(repo: Repository) -> tuple[tuple[ExportedModel, ...], tuple[str, ...]]:
    """The repository's models a cluster or a boot unit can serve, and why the others are left out."""
    models: list[ExportedModel] = []
    skipped: list[str] = []
    for found in repo.models():
        model, why = _exported_model(repo, found.name)
        if model is not None:
            models.append(model)
        elif why:
            skipped.append(why)
    if not models:
        raise ModelwizError(
            f"no model in {repo.root} can be exported" + (f" ({skipped[0]})" if skipped else ""),
            hint="add one with `modelwiz add MODEL` and let its download finish",
        )
    return tuple(models), tuple(skipped)


def serving_facts(repo: Repository, options: ServeOptions | None = None, host: HostFacts | None = None) -> ServingFacts:
    """Everything an export needs: the repository's exportable models and the container
    `modelwiz up` creates for them (`options`: the flags layer; `host`: default this host)."""
    models, skipped = exportable_models(repo)
    inputs = replace(read_launch_inputs(repo.root), models=tuple(m.name for m in models))
    spec = build_launch_spec(inputs, options or ServeOptions(), HostFacts.local() if host is None else host)
    return ServingFacts(spec=spec, models=models, gpus=tuple(repo.used_devices()), skipped=skipped)
