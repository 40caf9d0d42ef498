"""`modelwiz verify [NAME...]`: re-hash a repository's weights (or a download folder) and name any bad file."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from wizard.commands._repo_args import add_repository_argument
from wizard.errors import ModelwizError

if TYPE_CHECKING:
    from wizard.download import FolderCheck

DESCRIPTION = (
    "Re-read every weight file of the repository's models (or of a `modelwiz download` folder with "
    "--folder) and compare it with the size and content hash (sha256, or git blob id for small files) "
    "the Hub listed when it was downloaded. Names each damaged or missing file and exits 1; with "
    "--repair, fetches those files again from the same commit (and exits 0 once they match)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", metavar="NAME", nargs="*", help="models to check (default: all of modelwiz's)")
    add_repository_argument(parser)
    parser.add_argument("--folder", metavar="DIR", help="check a `modelwiz download --to DIR` folder instead")
    parser.add_argument("--repair", action="store_true", help="fetch damaged or missing files again")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wizard.download import verify_folder
    from wizard.naming import check_name
    from wizard.repository import Repository, resolve_repository
    from wizard.units import format_bytes

    checks: list[tuple[str, FolderCheck]] = []
    if args.folder:
        checks.append((args.folder, verify_folder(Path(args.folder).expanduser())))
    else:
        repo = Repository.open(resolve_repository(args.repository))
        names = [check_name(n) for n in args.names] or list(repo.manifest.names)
        for name in names:
            entry = repo.manifest.get(name)
            if entry is None:
                raise ModelwizError(f"no model {name!r} of modelwiz's in {repo.root}", hint="see `modelwiz status`")
            if not entry.complete:
                print(f"{name}: not finished yet (run `modelwiz add {entry.source}` to finish it)", file=sys.stderr)
                continue
            if entry.revision is None:
                print(f"{name}: copied from a local folder; no Hub hashes to check against", file=sys.stderr)
                continue
            checks.append((name, verify_folder(repo.weights_dir(entry))))
    for label, check in checks:
        state = "ok" if check.ok else f"{len(check.bad)} bad file(s)"
        sized = f", {len(check.sized)} by size only (no hash recorded)" if check.sized else ""
        print(
            f"{label}: {len(check.checked)} files match the Hub's hashes{sized}, {format_bytes(check.bytes)}: {state}"
        )
        for path, why in check.bad:
            print(f"{label}: {path} {why}", file=sys.stderr)
    bad = [(label, check) for label, check in checks if not check.ok]
    if bad and args.repair:
        for label, check in bad:
            _repair(label, check)
        print("repaired: all good")
        return 0
    if bad:
        label, check = bad[0]
        path, why = check.bad[0]
        count = sum(len(c.bad) for _, c in bad)
        more = f" (and {count - 1} more above)" if count > 1 else ""
        raise ModelwizError(
            f"{label}: {path} {why}{more}",
            hint="run `modelwiz verify --repair` (with the same arguments) to fetch the bad files again",
        )
    print("all good" if checks else "nothing to check")
    return 0


def _repair(label: str, check: FolderCheck) -> None:
    """Delete the bad files and fetch them again from the commit that was verified."""
    from wizard.download import download_model, forget_bad_files
    from wizard.progress_text import progress_printer

    forget_bad_files(check)
    printer = progress_printer(sys.stderr)
    try:
        download_model(check.repo_id, check.folder, revision=check.sha, on_progress=printer)
    finally:
        printer.close()
    print(f"{label}: fetched {len(check.bad)} file(s) again")
