"""`modelwiz remove NAME`: take a model out of the repository (asks before deleting weights)."""

from __future__ import annotations

import argparse
import sys

from wizard.commands._repo_args import add_repository_argument, ask_yes_no, interactive
from wizard.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the model name (see `modelwiz status`)")
    add_repository_argument(parser)
    parser.add_argument("--keep-weights", action="store_true", help="keep the downloaded weights")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask; delete the weights too")


def run(args: argparse.Namespace) -> int:
    from wizard.naming import check_name
    from wizard.repository import Repository, resolve_repository
    from wizard.units import format_bytes

    name = check_name(args.name)
    repo = Repository.open(resolve_repository(args.repository))
    entry = repo.manifest.get(name)
    delete_weights = not args.keep_weights
    if entry is not None and delete_weights and not args.yes:
        weights = repo.weights_dir(entry)
        if not interactive():
            raise UsageError(
                f"removing {name} would delete its weights in {weights}",
                hint="pass --yes to delete them, or --keep-weights to keep them",
            )
        size = sum(p.stat().st_size for p in weights.rglob("*") if p.is_file()) if weights.exists() else 0
        delete_weights = ask_yes_no(f"Delete the weights of {name} ({format_bytes(size)} in {weights})?")
    with repo.lock():
        notes = Repository.open(repo.root).remove_model(name, delete_weights=delete_weights)
    for note in notes:
        print(note, file=sys.stderr)
    if unload_from_server(repo.root, name):
        print(f"unloaded {name} from the running server", file=sys.stderr)
    print(f"removed {name} from {repo.root}")
    return 0


def unload_from_server(repository, name: str) -> bool:
    """Free the removed model's GPU memory now, when the repository's server has it loaded."""
    from wizard.serve import server_status
    from wizard.triton_http import TritonHttp, TritonHttpError

    status = server_status(repository)
    if status is None or status.state != "running" or not status.url:
        return False
    if not any(m.name == name and m.state == "READY" for m in status.models):
        return False
    try:
        TritonHttp(status.url).unload(name)
    except TritonHttpError as error:
        print(f"warning: could not unload {name} from the server ({error}); `modelwiz up` will", file=sys.stderr)
        return False
    return True
