"""`modelwiz gpus`: the GPUs modelwiz will plan for."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for other tools")


def run(args: argparse.Namespace) -> int:
    from wizard.gpus import load_inventory
    from wizard.images import image_record

    inventory = load_inventory(args.gpus)
    image = image_record(inventory.driver_version, inventory.gpu_kind)
    if args.json:
        print(json.dumps({**inventory.to_json(), "image": image}, indent=2))
    else:
        print(render_table(inventory))
        print(f"Triton image: {image['ref'] or 'none'} ({image['reason']})")
    return 0


def render_table(inventory) -> str:
    from wizard.units import format_bytes

    if inventory.source == "described":
        header = f"Described GPUs ({inventory.spec}): idle, as they would be on that machine"
    else:
        header = f"NVIDIA driver {inventory.driver_version}, CUDA {inventory.cuda_driver_version}"
    rows = [("#", "GPU", "CC", "total", "used", "free", "processes")]
    for gpu in inventory.gpus:
        procs = f"{len(gpu.processes)}" if gpu.processes else "-"
        rows.append(
            (
                str(gpu.index),
                gpu.name + ("  [MIG]" if gpu.mig_enabled else ""),
                gpu.compute_capability_str,
                format_bytes(gpu.memory_total_bytes),
                format_bytes(gpu.memory_used_bytes),
                format_bytes(gpu.memory_free_bytes),
                procs,
            )
        )
        for s in gpu.mig_devices:
            rows.append(
                (
                    f" {s.cdi_id}",
                    "  " + s.name,
                    "",
                    format_bytes(s.memory_total_bytes),
                    format_bytes(s.memory_used_bytes),
                    format_bytes(s.memory_free_bytes),
                    "",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4, 5, 6}
    lines = [header]
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
