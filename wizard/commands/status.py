"""`modelwiz status`: the repository's models, their plans, and whether they are ready."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from wizard.commands._repo_args import add_repository_argument

if TYPE_CHECKING:
    from wizard.endpoints import EndpointsView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repository_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from wizard.endpoints import render_endpoints
    from wizard.measured import describe_measured, measured_json, measured_warning
    from wizard.plan_render import plan_summary
    from wizard.plan_types import ModelPlan
    from wizard.repo_status import collect_status
    from wizard.repository import Repository, resolve_repository

    repo = Repository.open(resolve_repository(args.repository))
    status = collect_status(repo)
    # "image" stays the recorded reference; "image_info" says what it runs and whether this driver does.
    status["image_info"] = image_info(status["image"], args.gpus)
    # Per model, what vLLM measured at its last load (null: not loaded by modelwiz since it was added).
    for row in status["models"]:
        entry = repo.manifest.get(row["name"]) if row["managed"] else None
        row["measured"] = measured_json(entry)
        row["measured_warning"] = measured_warning(entry)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"Repository {status['repository']}")
    if status["image"]:
        print(f"Image {status['image']}, mounted at {status['mount_point']}")
        if status["image_info"]:
            print(f"  {status['image_info']['reason']}")
    server = status["server"]
    if server is None:
        print("Server: not running (start it with `modelwiz up`)")
    else:
        where = f" at {server['url']}" if server["url"] and server["state"] == "running" else ""
        print(f"Server: {server['name']} {server['state']}{where}")
        if server["error"]:
            print(f"  {server['error']}")
        if server["state"] == "running" and server["url"]:
            for line in render_endpoints(status_endpoints(server, status["models"])):
                print(line)
    if not status["models"]:
        print("No models yet: add one with `modelwiz add MODEL`.")
        return 0
    for row in status["models"]:
        state = row["state"] + (f", server: {row['server_state']}" if row["server_state"] else "")
        print(f"{row['name']}  [{state}]")
        if row["managed"]:
            revision = (row["revision"] or "local")[:12]
            print(f"  from {row['source']} @ {revision}")
            print(f"  plan {plan_summary(ModelPlan.from_json(row['plan']))}")
            entry = repo.manifest.get(row["name"])
            if entry is not None and entry.measured:
                print(f"  {describe_measured(entry)}")
            if row["measured_warning"]:
                print(f"  warning: {row['measured_warning']}")
        else:
            print("  not made by modelwiz (left untouched)")
        if row["config"]:
            print(f"  config {row['config']}")
        for rel in row["edited"]:
            print(f"  {rel} was edited by hand (kept)")
        for rel in row["waiting"]:
            print(f"  modelwiz's version waits in {rel}")
        for problem in row["problems"]:
            print(f"  problem: {problem}")
        if row.get("openai"):
            kind = "chat + completions" if row["openai"]["chat"] else "completions only"
            print(f"  OpenAI API: {kind} ({row['openai']['reason']})")
    return 0


def status_endpoints(server: dict[str, Any], models: list[dict[str, Any]]) -> EndpointsView:
    """The running server's endpoints (from `collect_status`'s rows), for the one renderer."""
    from wizard.endpoints import EndpointsView

    ready = tuple(name for name, state in server["models"].items() if state == "READY")
    chat = {row["name"]: bool(row["openai"]["chat"]) for row in models if row.get("openai")}
    return EndpointsView(
        http=server["url"],
        grpc=server["grpc"] or "",
        metrics=server["metrics"] or "",
        openai=server["openai_url"],
        models=ready,
        chat=chat,
    )


def image_info(ref: str | None, gpus_spec: str | None) -> dict[str, Any] | None:
    """{ref, vllm_version, engine, reason} for the recorded image, checked against this machine's
    driver (or --gpus/--driver) when it can be read; None without an image or for one modelwiz
    does not know."""
    from wizard import images
    from wizard.errors import ModelwizError
    from wizard.gpus import load_inventory

    if not ref or images.find_image(ref) is None:
        return None
    try:
        inventory = load_inventory(gpus_spec)
        driver, kind = inventory.driver_version, inventory.gpu_kind
    except ModelwizError:
        driver, kind = None, "consumer"
    return images.describe_choice(ref, driver, kind).to_json()
