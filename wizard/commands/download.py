"""`modelwiz download MODEL --to DIR`: fetch what vLLM needs of a Hub model, resumably."""

from __future__ import annotations

import argparse
import sys

from wizard.errors import UsageError

DESCRIPTION = (
    "Download the config, tokenizer and safetensors weights of a Hugging Face model into DIR, "
    "straight from the Hub (no second copy in the HF cache). Every file is checked against the Hub's "
    "sha256 (git blob id for small files); `modelwiz verify --folder DIR` checks them again later. "
    "A progress bar on a terminal, plain lines otherwise. Interrupted? Run the same command again: what arrived is kept. Uses the "
    "token huggingface_hub knows (HF_TOKEN or `modelwiz login`); honours HF_ENDPOINT and HF_HUB_OFFLINE."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="Hub model id, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument(
        "--to",
        metavar="DIR",
        required=True,
        help="folder to download into (created if missing; an existing one must be empty or hold an earlier "
        "download of the same model, which is resumed)",
    )
    parser.add_argument("--revision", metavar="REV", default=None, help="branch, tag or commit (default: main)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wizard.download import download_model
    from wizard.progress_text import progress_printer
    from wizard.units import format_bytes

    if not args.to.strip():
        raise UsageError("--to is empty", hint="name the folder to download into, e.g. --to ./models/qwen")
    printer = progress_printer(sys.stderr)
    try:
        result = download_model(args.model, Path(args.to), revision=args.revision, on_progress=printer)
    finally:
        printer.close()
    if result.offline:
        what = "offline: using the copy already on disk"
    elif result.fetched_bytes == 0:
        what = "already complete, nothing to fetch"
    else:
        what = f"fetched {format_bytes(result.fetched_bytes)}"
    print(
        f"{args.model} @ {result.sha[:12]}: {len(result.files)} files, {format_bytes(result.bytes)} "
        f"in {result.path} ({what})"
    )
    return 0
