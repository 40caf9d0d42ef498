"""Download benchmark: modelwiz's download vs `hf download`, same model, same fake Hub, same run.

Generates a multi-file model (~300 MB of safetensors shards plus config/tokenizer), serves it from
tests/fakehub.FakeHub on 127.0.0.1, then downloads it
  1. with `hf download REPO --local-dir DIR` (huggingface_hub's CLI, a subprocess), and
  2. with `python -m wizard download REPO --to DIR` (a subprocess too, so both pay start-up),
alternating, `--rounds` times each. Prints throughput (MB/s of model bytes), the ratio
modelwiz/hf (target >= 0.95) and the disk ratio: bytes on disk (st_blocks) / model bytes
(target 1.00), for modelwiz's folder and for the HF-cache + local_dir pair a default
`hf download` without --local-dir would leave.

Then resume after a kill: each tool downloads again into a new folder over a throttled Hub, is
killed (SIGKILL) once half the model's bytes are on disk, and runs again over the same throttled
link (~16 MB/s a file, as one stream from a CDN). Prints the
bytes the rerun fetched and its wall time, for both (huggingface_hub restarts a cut file from zero;
modelwiz asks for the rest of it).

    python3 benchmarks/download.py [--mb 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakehub import FakeHub, FakeRepo, safetensors_bytes  # noqa: E402


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def make_repo(total_mb: int) -> FakeRepo:
    shards = 6
    per = total_mb * 1024 * 1024 // shards
    block = os.urandom(1024 * 1024)
    files = {
        "config.json": b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}',
        "generation_config.json": b"{}",
        "tokenizer.json": os.urandom(2 * 1024 * 1024),
        "tokenizer_config.json": b"{}",
    }
    for i in range(1, shards + 1):
        files[f"model-{i:05d}-of-{shards:05d}.safetensors"] = safetensors_bytes({f"t{i}": ("U8", [per])}, fill=block)
    files["model.safetensors.index.json"] = b'{"metadata": {}, "weight_map": {}}'
    return FakeRepo("bench/model", files)


def bytes_on_disk(dest: Path) -> int:
    """Every byte under `dest`, finished or partial (huggingface_hub's *.incomplete, modelwiz's *.part)."""
    total = 0
    for path in dest.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            continue  # renamed or deleted while we looked
    return total


def served_bytes(hub: FakeHub, repo: FakeRepo, since: int) -> int:
    """Bytes of file bodies the Hub sent for GETs logged after `since` (a Range starts later)."""
    total = 0
    for req in hub.requests("GET")[since:]:
        name = req.path.split("?")[0].rsplit("/", 1)[-1]
        size = next((len(d) for p, d in repo.files.items() if p.rsplit("/", 1)[-1] == name), None)
        if size is None or "/api/" in req.path:
            continue
        start = req.headers.get("range", "bytes=0-").removeprefix("bytes=").split("-")[0]
        total += size - int(start or 0)
    return total


def killed_then_rerun(cmd: list[str], env: dict, hub: FakeHub, repo: FakeRepo, dest: Path) -> tuple[float, int]:
    """Run `cmd`, SIGKILL it once half the model is on disk in `dest`, rerun it (both throttled).
    Returns (rerun wall time, bytes the rerun fetched)."""
    model_bytes = sum(len(d) for d in repo.files.values())
    env = dict(env, HF_HOME=str(dest.parent / f"{dest.name}-hf-home"))  # an empty HF cache
    hub.throttle.update({p: 0.004 for p in repo.files if p.endswith(".safetensors")})  # ~16 MB/s a file
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while bytes_on_disk(dest) < model_bytes // 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{cmd[:4]} ended before half the model was on disk")
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    since = len(hub.requests("GET"))
    elapsed = run(cmd, env)  # as throttled: over a real link the rerun's time follows its bytes
    hub.throttle.clear()
    return elapsed, served_bytes(hub, repo, since)


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    repo = make_repo(args.mb)
    model_bytes = sum(len(d) for d in repo.files.values())
    hf = shutil.which("hf")
    if hf is None:
        raise SystemExit("the `hf` CLI (huggingface_hub) is not on PATH")
    with FakeHub([repo]) as hub, tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        tmp = Path(tmp)
        env = dict(
            os.environ,
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(tmp / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_UPDATE_CHECK="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            PYTHONPATH=str(ROOT),
        )
        env.pop("HF_TOKEN", None)
        times = {"hf": [], "modelwiz": []}
        for r in range(args.rounds):
            for tool in ("hf", "modelwiz") if r % 2 == 0 else ("modelwiz", "hf"):
                dest = tmp / f"{tool}-{r}"
                if tool == "hf":
                    cmd = [hf, "download", repo.repo_id, "--local-dir", str(dest)]
                else:
                    cmd = [sys.executable, "-m", "wizard", "download", repo.repo_id, "--to", str(dest)]
                times[tool].append(run(cmd, env))
                if r < args.rounds - 1:
                    shutil.rmtree(dest)
        mw_dir = tmp / f"modelwiz-{args.rounds - 1}"
        mw_disk = disk_bytes(mw_dir)
        # The default `hf download` (no --local-dir) fills the HF cache; copying out of it, or a
        # cache + local_dir pair, is the double copy modelwiz avoids.
        cache_run = run([hf, "download", repo.repo_id], env)
        cache_disk = disk_bytes(tmp / "hf-home" / "hub")
        hf_local = disk_bytes(tmp / f"hf-{args.rounds - 1}")
        resumed = {
            "hf": killed_then_rerun(
                [hf, "download", repo.repo_id, "--local-dir", str(tmp / "hf-kill")], env, hub, repo, tmp / "hf-kill"
            ),
            "modelwiz": killed_then_rerun(
                [sys.executable, "-m", "wizard", "download", repo.repo_id, "--to", str(tmp / "mw-kill")],
                env,
                hub,
                repo,
                tmp / "mw-kill",
            ),
        }

    mb = model_bytes / 1e6
    hf_t, mw_t = statistics.median(times["hf"]), statistics.median(times["modelwiz"])
    print(
        f"model: {mb:.1f} MB in {len(repo.files)} files, {args.rounds} rounds each (median wall time, "
        "process start included)"
    )
    print(f"hf download --local-dir : {hf_t:6.2f} s  {mb / hf_t:8.1f} MB/s   runs {[round(t, 2) for t in times['hf']]}")
    print(
        f"modelwiz download       : {mw_t:6.2f} s  {mb / mw_t:8.1f} MB/s   runs {[round(t, 2) for t in times['modelwiz']]}"
    )
    print(f"throughput ratio modelwiz/hf: {hf_t / mw_t:.3f}  (target >= 0.95)")
    print(f"disk ratio modelwiz folder (st_blocks / model bytes): {mw_disk / model_bytes:.3f}  (target 1.00)")
    print(f"disk ratio hf --local-dir folder: {hf_local / model_bytes:.3f}")
    print(
        f"disk ratio HF cache + a local_dir copy of it: {(cache_disk + hf_local) / model_bytes:.3f}"
        f"  (hf download into the cache took {cache_run:.2f} s)"
    )
    (hf_s, hf_b), (mw_s, mw_b) = resumed["hf"], resumed["modelwiz"]
    print("killed with half the model on disk, then run again:")
    print(f"  hf download --local-dir : rerun fetched {hf_b / 1e6:7.1f} MB in {hf_s:5.2f} s")
    print(f"  modelwiz download       : rerun fetched {mw_b / 1e6:7.1f} MB in {mw_s:5.2f} s")
    print(f"  bytes ratio modelwiz/hf: {mw_b / hf_b:.3f}   time ratio modelwiz/hf: {mw_s / hf_s:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
