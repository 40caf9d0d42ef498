"""`modelwiz add`: plan, confirm, download, write the repository, then launch or update the server."""

from __future__ import annotations

import argparse
import sys

from wizard.add_flow import AddEvent, AddRequest, describe_proposal
from wizard.commands._repo_args import add_repository_argument, ask_repository, ask_yes_no, interactive
from wizard.commands.plan import FILL_HELP, RESERVE_HELP, gib_argument
from wizard.commands.up import print_success
from wizard.errors import Cancelled, UsageError
from wizard.gpus import load_inventory
from wizard.progress_text import progress_printer
from wizard.repository import remember_repository, resolve_repository
from wizard.serve import Reporter, ServeOptions
from wizard.serve_options import add_serve_arguments
from wizard.session import AddSession
from wizard.units import GiB

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
    add_serve_arguments(parser, "add")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--fill", action="store_true", help=FILL_HELP)
    parser.add_argument("--reserve", type=gib_argument, default=0.0, metavar="GIB", help=RESERVE_HELP)
    parser.add_argument("--no-launch", action="store_true", help="stop after writing the repository")


def run(args: argparse.Namespace) -> int:
    if args.name is not None and len(args.models) != 1:
        raise UsageError("--name works with one MODEL at a time")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise UsageError("--max-model-len must be a positive number of tokens")
    if not args.yes and not interactive():
        raise UsageError("adding models needs a confirmation", hint="pass --yes to go ahead without asking")
    root = resolve_repository(args.repository, ask=ask_repository)
    requests = [AddRequest(m, args.name, args.max_model_len) for m in args.models]
    # The GPUs are filled by default (--fill is the default, kept for scripts); --reserve keeps room.
    session = AddSession(
        root,
        load_inventory(args.gpus),
        image_ref=args.image,
        reserve_bytes=int(args.reserve * GiB),
        on_event=_show,
    )
    # One change at a time: planned against the manifest as it is, saved before anyone else plans.
    with session.locked() as repo:
        proposal = session.propose(requests)
        print("\n".join(describe_proposal(proposal)))
        question = "Change the budgets shown and go ahead?" if proposal.changed else "Go ahead?"
        if not args.yes and not ask_yes_no(question):
            raise Cancelled("nothing was changed")
        printer = progress_printer(sys.stderr)
        try:
            result = session.write(proposal, on_progress=printer)
        finally:
            printer.close()
    if args.repository:
        remember_repository(repo.root)
    print(f"wrote {', '.join(result.names)} to {repo.root}")
    if args.no_launch:
        return 0
    confirm = (lambda question: True) if args.yes else _confirm_on_terminal
    reporter = Reporter(on_event=lambda event: print(event.message, file=sys.stderr), confirm=confirm)
    # The server's flags `add` takes (--image names the repository's image, recorded above).
    flags = ServeOptions.from_args(args)
    serving = session.launch(
        result.names, result.rewritten, ServeOptions(openai=flags.openai, openai_port=flags.openai_port), reporter
    )
    print_success(serving.spec, serving.result)
    return 0


def _show(event: AddEvent) -> None:
    print(event.message, file=sys.stderr)


def _confirm_on_terminal(question: str) -> bool:
    return interactive() and ask_yes_no(question)
