"""`modelwiz add`: plan, confirm, download, write the repository, then launch or update the server."""

from __future__ import annotations

import argparse
import sys
import time

from wizard.commands._repo_args import add_repository_argument, ask_repository, ask_yes_no, interactive
from wizard.errors import Cancelled, UsageError

HELP = "add models to the Triton model repository (plans all models together)"
DESCRIPTION = (
    "Plan MODEL(s) together with the models already in the repository, confirm, download the "
    "weights, write config.pbtxt and 1/model.json, then start or update the server. MODEL is a "
    "Hugging Face repo id (owner/name) or a local model folder."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="Hub repo id or model folder")
    add_repository_argument(parser)
    parser.add_argument("--name", help="the Triton model name (only with one MODEL)")
    parser.add_argument("--max-model-len", type=int, metavar="N", help="context length to plan for")
    parser.add_argument("--image", metavar="TAG", help="Triton vLLM image for a new repository")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--no-launch", action="store_true", help="stop after writing the repository")


class _ProgressPrinter:
    """Download progress on stderr, at most once a second."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, event) -> None:  # ProgressEvent
        from wizard.units import format_bytes, format_duration, format_rate

        now = time.monotonic()
        if not event.finished and now - self._last < 1.0:
            return
        self._last = now
        pct = f"{event.fraction * 100:5.1f}%" if event.fraction is not None else "   ?  "
        print(
            f"  {pct} {format_bytes(event.done_bytes)} / {format_bytes(event.total_bytes)} "
            f"{format_rate(event.rate_bytes_per_s)} eta {format_duration(event.eta_s)}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from wizard.add_flow import AddRequest, describe_proposal, execute_add, launch_after_add, prepare_add
    from wizard.gpus import load_inventory
    from wizard.repository import Repository, remember_repository, resolve_repository

    if args.name is not None and len(args.models) != 1:
        raise UsageError("--name works with one MODEL at a time")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise UsageError("--max-model-len must be a positive number of tokens")
    if not args.yes and not interactive():
        raise UsageError("adding models needs a confirmation", hint="pass --yes to go ahead without asking")
    root = resolve_repository(args.repository, ask=ask_repository)
    requests = [AddRequest(m, args.name, args.max_model_len) for m in args.models]
    inventory = load_inventory(args.gpus)
    repo = Repository.open(root, create=True)

    def show(event) -> None:  # AddEvent
        print(f"{event.message}", file=sys.stderr)

    proposal = prepare_add(repo, requests, inventory=inventory, image_ref=args.image, on_event=show)
    print("\n".join(describe_proposal(proposal)))
    if not args.yes:
        question = "Change the budgets shown and go ahead?" if proposal.changed else "Go ahead?"
        if not ask_yes_no(question):
            raise Cancelled("nothing was changed")
    result = execute_add(repo, proposal, on_event=show, on_progress=_ProgressPrinter())
    if args.repository:
        remember_repository(repo.root)
    print(f"wrote {', '.join(result.names)} to {repo.root}")
    if args.no_launch:
        return 0
    launch_after_add(repo.root, result.names, on_event=show)
    return 0
