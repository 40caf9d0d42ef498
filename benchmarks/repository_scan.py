"""How long `modelwiz status` (Repository.models) and a full rewrite take for a large repository.

Builds N modelwiz models (small weights) plus N foreign ones in a temp folder, then times:
listing every model (parses each config.pbtxt with Triton's protobuf, hashes the files) and
write_models over all modelwiz models (renders, validates, compares hashes; nothing changes).

    python3 benchmarks/repository_scan.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard.manifest import Manifest
from wizard.plan_types import InstanceGroup, ModelPlan
from wizard.repository import Repository, new_entry


def plan(name: str, device: str) -> ModelPlan:
    return ModelPlan(
        model=f"org/{name}",
        name=name,
        fits=True,
        reason="",
        tensor_parallel_size=1,
        gpu_memory_utilization=0.1,
        max_model_len=4096,
        dtype="bfloat16",
        instance_group=InstanceGroup("KIND_GPU", 1, (int(device),)),
        weights_bytes=1,
        kv_cache_bytes_per_token=1,
        kv_cache_tokens=1,
        max_concurrency=1.0,
        devices=(device,),
    )


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = Repository(root, Manifest(image="nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3"))
        entries = []
        for i in range(n):
            entry = new_entry(plan(f"m{i}", str(i % 8)), source=f"org/m{i}", weights=f"M{i}")
            (root / entry.name / entry.weights).mkdir(parents=True)
            (root / entry.name / entry.weights / "config.json").write_text("{}")
            entries.append(entry)
            foreign = root / f"foreign{i}"
            foreign.mkdir()
            (foreign / "config.pbtxt").write_text('backend: "vllm"\ninstance_group [{kind: KIND_MODEL}]\n')
        start = time.perf_counter()
        repo.write_models(entries, vllm_version="0.24.0", complete={e.name: None for e in entries})
        first = time.perf_counter() - start
        start = time.perf_counter()
        rows = Repository.open(root).models()
        listing = time.perf_counter() - start
        start = time.perf_counter()
        repo = Repository.open(root)
        repo.write_models(list(repo.manifest.models), vllm_version="0.24.0")
        again = time.perf_counter() - start
        print(
            f"{n} modelwiz + {n} foreign models: first write {first:.3f}s, "
            f"list {len(rows)} models {listing:.3f}s, unchanged rewrite {again:.3f}s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
