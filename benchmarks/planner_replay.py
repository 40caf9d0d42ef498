"""The planner against public vLLM deployments (tests/data/vllm_deployments.json).

For each deployment: the planner's KV cache (tokens) at the deployment's own settings against what
vLLM reported, and modelwiz's default plan for that model, GPUs (same tensor_parallel_size) and
vLLM release replayed on what vLLM measured (see tests.planner_data.Replay): would it have started?

Run: python3 benchmarks/planner_replay.py [--before /work/main/wizard/planner.py]
`--before` also scores an older planner.py (it is loaded by path, with this tree's other modules;
planners without vLLM versions are given the same deployments and plan with their own defaults).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.planner_data import Deployment, deployments, predicted_kv_tokens, replay
from wizard import planner as current
from wizard.vllm_memory import budget_bytes, kv_pool_tokens


def load_planner(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("planner_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def versioned(planner: ModuleType) -> bool:
    return hasattr(planner, "default_vllm_version")


def kv_tokens(planner: ModuleType, case: Deployment) -> int:
    if versioned(planner):
        return predicted_kv_tokens(case)
    # An unversioned planner: its one set of terms, at the deployment's utilization.
    cost = planner.engine_cost(case.meta, case.tp, case.gpu.cuda_total_bytes)
    pool = budget_bytes(case.utilization, case.gpu.cuda_total_bytes) - cost.inside
    return kv_pool_tokens(pool, case.meta.kv_bytes_per_token(case.tp))


def default_plan(planner: ModuleType, case: Deployment):  # -> ModelPlan
    if versioned(planner):
        request = planner.ModelRequest(case.meta, "m", tensor_parallel_size=case.tp)
        plan = planner.plan_models(case.inventory(), [request], vllm_version=case.vllm_version, fill=True)
        return plan.models[0]
    # main's `modelwiz plan`: no fill unless asked, its own tp.
    return planner.plan_models(case.inventory(), [planner.ModelRequest(case.meta, "m")]).models[0]


def score(planner: ModuleType, label: str, cases: list[Deployment]) -> dict[str, float]:
    print(f"\n== {label}")
    print(f"{'deployment':44s} {'vLLM':>9s} {'planned':>9s}  error  util  context  starts (batch-corrected)")
    errors, starts, batch_starts, not_comparable = [], 0, 0, 0
    for case in cases:
        tokens = kv_tokens(planner, case)
        error = (tokens - case.kv_cache_tokens) / case.kv_cache_tokens
        errors.append(abs(error))
        plan = default_plan(planner, case)
        if plan.fits and plan.tensor_parallel_size != case.tp:
            not_comparable += 1
            verdict = f"n/a (planned tp {plan.tensor_parallel_size})"
        else:
            r = replay(case, plan)
            starts += r.starts
            batch_starts += r.starts_with_plan_batch
            verdict = ("yes" if r.starts else "NO") + f" ({'yes' if r.starts_with_plan_batch else 'NO'})"
            if not plan.fits:
                verdict = "NO (plan: does not fit)"
        print(
            f"{case.id:44s} {case.kv_cache_tokens:>9d} {tokens:>9d} {error * 100:+6.1f}% "
            f"{plan.gpu_memory_utilization:5.2f} {plan.max_model_len:>8d}  {verdict}"
        )
    summary = {
        "median_error_pct": statistics.median(errors) * 100,
        "worst_error_pct": max(errors) * 100,
        "within_10pct": sum(e <= 0.10 for e in errors),
        "starts": starts,
        "starts_batch_corrected": batch_starts,
        "not_comparable": not_comparable,
        "cases": len(cases),
    }
    print(
        f"KV tokens: median error {summary['median_error_pct']:.1f} %, worst {summary['worst_error_pct']:.1f} %, "
        f"{summary['within_10pct']}/{len(cases)} within 10 %; default plans that start: {starts}/{len(cases)} "
        f"({batch_starts} with the plan's batch limits), {not_comparable} planned at another tp"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="PLANNER_PY", help="also score this planner.py (e.g. main's)")
    args = parser.parse_args()
    cases = deployments()
    if args.before:
        score(load_planner(args.before), f"before: {args.before}", cases)
    score(current, "this planner", cases)


if __name__ == "__main__":
    main()
