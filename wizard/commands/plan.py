"""`modelwiz plan`: will these models fit on these GPUs, and with which vLLM settings."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wizard.gpus import GpuInventory
    from wizard.images import ImageChoice
    from wizard.planner import Plan

DESCRIPTION = (
    "Plan how MODELs (Hugging Face repo ids, or local folders with config.json and weights) fit on "
    "the GPUs, without downloading weights. Exit 0 when every model fits, 1 when one does not."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of tokens")
    return value


def gib_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value:g} GiB: give 0 or more")
    return value


FILL_HELP = (
    "give the GPUs' leftover memory to the models as extra KV cache (more concurrent requests; a model "
    "added later then re-plans these); this is the default, the flag is kept for scripts that pass it"
)
RESERVE_HELP = "keep GIB of memory free on every GPU for models to be added later (default 0: use it all)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="Hub repo id or local model folder")
    parser.add_argument(
        "--max-model-len",
        type=_positive_int,
        metavar="N",
        help="context length for every model (default: the model's own limit, shortened to fit)",
    )
    parser.add_argument("--fill", action="store_true", help=FILL_HELP)
    parser.add_argument("--reserve", type=gib_argument, default=0.0, metavar="GIB", help=RESERVE_HELP)
    parser.add_argument(
        "--image",
        metavar="REF",
        help="plan for this Triton vLLM image (e.g. 25.07-vllm-python-py3) instead of the newest the driver runs",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for other tools")


def run(args: argparse.Namespace) -> int:
    from wizard.calibration import load_calibration
    from wizard.gpus import load_inventory
    from wizard.model_meta import load_model_meta
    from wizard.naming import derive_name, unique_name
    from wizard.planner import ModelRequest, plan_models
    from wizard.units import GiB

    inventory = load_inventory(args.gpus)
    requests = []
    taken: set[str] = set()
    for ref in args.models:
        meta = load_model_meta(ref)
        name = unique_name(derive_name(ref), taken)
        taken.add(name)
        requests.append(ModelRequest(meta=meta, name=name, max_model_len=args.max_model_len))
    choice, image = _choose_image(inventory, args.image)
    # Plans are for the image's vLLM, and fill the GPUs (leftover memory becomes KV cache) less
    # what --reserve keeps free; launches on this machine calibrate them.
    plan = plan_models(
        inventory,
        requests,
        fill=True,
        reserve_bytes=int(args.reserve * GiB),
        vllm_version=choice.info.vllm_release if choice is not None else None,
        calibration=load_calibration(),
    )
    servable = choice is not None and _servable(plan, choice, image)
    if args.json:
        print(json.dumps({**plan.to_json(), "image": image}, indent=2))
    else:
        from wizard.plan_render import render_plan

        print(render_plan(plan))
        print(f"Triton image: {image['ref'] or 'none'} ({image['reason']})")
    return 0 if plan.fits and servable else 1


def _choose_image(inventory: GpuInventory, image_ref: str | None) -> tuple[ImageChoice | None, dict[str, Any]]:
    """The image the plan is for and the `"image"` of `plan --json` ({ref, vllm_version, engine,
    reason}); no choice when no image runs on the driver (the record says why)."""
    from wizard import images

    try:
        if image_ref:
            choice = images.describe_choice(image_ref, inventory.driver_version, inventory.gpu_kind)
        else:
            choice = images.choose_image(inventory.driver_version, inventory.gpu_kind)
    except images.ImageError as error:
        return None, images.no_image_record(error)
    return choice, choice.to_json()


def _servable(plan: Plan, choice: ImageChoice, record: dict[str, Any]) -> bool:
    """Whether the image can serve the plan (a forced 25.03 cannot place replicas); the reason
    for a refusal is added to `record`."""
    from wizard.model_config import serving_problems
    from wizard.plan_types import sort_devices

    fitting = [m for m in plan.models if m.fits]
    devices = sort_devices([d for m in fitting for d in m.devices])
    problems = serving_problems(fitting, devices, choice.info)
    if problems:
        record["reason"] += "; cannot serve this plan: " + "; ".join(problems)
    return not problems
