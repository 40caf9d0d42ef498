"""`modelwiz down`: stop and remove the Triton container modelwiz started."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.commands.up import add_name_argument

    add_name_argument(parser)


def run(args: argparse.Namespace) -> int:
    from wizard import launcher, podman_conn

    client = podman_conn.connect()
    try:
        removed = launcher.down(client, args.name)
    finally:
        client.close()
    print(f"stopped and removed {args.name}" if removed else f"no container named {args.name}; nothing to do")
    return 0
