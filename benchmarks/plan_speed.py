"""How long `plan_models` takes for a large machine and model set (run: python3 benchmarks/plan_speed.py)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.planner_data import MODELS, meta
from wizard.gpus import describe
from wizard.planner import ModelRequest, plan_models


def main() -> None:
    cases = {
        "8xH100, 7 models": ("8xH100-80GB", list(MODELS)),
        "4xL4, 7 models (misfits explained)": ("4xL4", list(MODELS)),
        "2xH100, 70B": ("2xH100-80GB", ["Llama-3.1-70B"]),
    }
    for label, (spec, names) in cases.items():
        inventory = describe(spec)
        requests = [ModelRequest(meta(n), f"m{i}") for i, n in enumerate(names)]
        times = []
        for _ in range(20):
            start = time.perf_counter()
            plan_models(inventory, requests)
            times.append(time.perf_counter() - start)
        print(f"{label}: median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
