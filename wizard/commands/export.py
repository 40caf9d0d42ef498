"""`modelwiz export kube|systemd`: the same Triton deployment, for a cluster or for boot."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.errors import UsageError
from wizard.serve_options import Command, ServeOptions, add_serve_arguments

if TYPE_CHECKING:
    from wizard.export_facts import ServingFacts

DESCRIPTION = (
    "Export the Triton server that `modelwiz up` runs for this repository: `kube` writes a "
    "PersistentVolumeClaim, a ConfigMap per model, a Deployment (init containers download the "
    "weights) and a Service; `systemd` writes a Quadlet unit (or a plain service for podman "
    "older than 4.7) that starts the same container at boot. Output goes to stdout unless "
    "--output is given."
)


def _common(parser: argparse.ArgumentParser, which: Command) -> None:
    from wizard.cli import _global_options
    from wizard.commands._repo_args import add_repository_argument

    _global_options(parser, top=False)
    add_repository_argument(parser)
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    add_serve_arguments(parser, which)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    kube = targets.add_parser(
        "kube",
        help="Kubernetes / OpenShift manifests",
        description="Kubernetes manifests: PVC, ConfigMaps, Deployment (init containers download the "
        "weights at the pinned commits), Service. Apply with `kubectl apply -f FILE`.",
    )
    _common(kube, "export-kube")
    kube.add_argument("--namespace", metavar="NS", help="put every object in namespace NS")
    kube.add_argument(
        "--storage-class", metavar="SC", help="StorageClass of the weights volume (default: the cluster's default)"
    )
    kube.add_argument(
        "--init-image",
        metavar="REF",
        help="image the download init containers run; it needs python3 and huggingface_hub "
        "(default: the Triton image, which has both)",
    )
    kube.add_argument(
        "--openshift",
        action="store_true",
        help="leave the user ID to OpenShift (restricted-v2 runs the pod as an arbitrary UID); "
        "default: run as the image's triton-server user (uid 1000)",
    )
    kube.add_argument(
        "--hf-secret",
        metavar="NAME",
        default="hf-token",
        help="Secret with the Hugging Face token under key `token` (default: hf-token; "
        "optional: public models need none)",
    )
    systemd = targets.add_parser(
        "systemd",
        help="a systemd unit that runs the same container at boot",
        description="A Quadlet .container unit (podman >= 4.7), or a plain service running "
        "`podman run` for older podman, with the devices, mounts, ports and limits `modelwiz up` uses.",
    )
    _common(systemd, "export-systemd")
    systemd.add_argument(
        "--format",
        choices=("auto", "quadlet", "service"),
        default="auto",
        help="auto (default): quadlet if this machine's podman is 4.7 or newer, else service",
    )


def podman_version() -> tuple[int, ...] | None:
    """This machine's podman version, or None when podman is not installed."""
    exe = shutil.which("podman")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def _write(text: str, output: str | None) -> None:
    if not output or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from wizard.errors import ModelwizError
    from wizard.fsutil import atomic_write_text

    path = Path(output).expanduser()
    if path.is_dir():
        raise UsageError(f"{path} is a folder", hint="give --output a file name")
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist", hint="create it, or write to another place")
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise ModelwizError(f"cannot write {path}: {error.strerror}") from None
    print(f"wrote {path}", file=sys.stderr)


def _facts(args: argparse.Namespace) -> ServingFacts:
    from wizard.commands._repo_args import ask_repository
    from wizard.export_facts import serving_facts
    from wizard.repository import Repository, resolve_repository

    root = resolve_repository(args.repository, ask=ask_repository)
    return serving_facts(Repository.open(root), ServeOptions.from_args(args))


def _gpu_products(gpus_spec: str | None, devices: tuple[str, ...]) -> tuple[str, ...]:
    """The product names of the GPUs the plans use (a MIG slice's parent GPU), from NVML or
    --gpus; none when the GPUs cannot be read here (the export then pins no product)."""
    from wizard.errors import ModelwizError
    from wizard.gpus import load_inventory

    try:
        inventory = load_inventory(gpus_spec)
    except ModelwizError:
        return ()
    indexes = {int(d.split(":")[0]) for d in devices if d.split(":")[0].isdigit()}
    return tuple(sorted({g.name for g in inventory.gpus if g.index in indexes or not indexes}))


def run(args: argparse.Namespace) -> int:
    if args.target == "kube":
        from wizard.export_kube import KubeOptions, check_options, render_kube

        options = KubeOptions(
            namespace=args.namespace,
            storage_class=args.storage_class,
            init_image=args.init_image,
            hf_secret=args.hf_secret,
            openshift=args.openshift,
        )
        check_options(options)  # bad flags fail before the repository is read
        facts = _facts(args)
        options = replace(options, gpu_products=_gpu_products(args.gpus, facts.gpus))
        _write(render_kube(facts, options), args.output)
        return 0
    from wizard.export_systemd import pick_format, render_systemd

    fmt = pick_format(podman_version()) if args.format == "auto" else args.format
    podman = shutil.which("podman") or "/usr/bin/podman"
    _write(render_systemd(_facts(args), fmt, podman=podman), args.output)
    return 0
