"""Learning from every launch: vLLM's load lines in Triton's log, split by model, kept in the
manifest (`status`) and in this machine's calibration (the next plan)."""

from __future__ import annotations

import json

import pytest

from tests.planner_data import write_real_model_folder
from tests.test_vllm_log import V1_019_TP2
from wizard.add_flow import AddRequest, execute_add, prepare_add
from wizard.calibration import (
    MAX_FACTOR,
    Calibration,
    Launch,
    calibration_path,
    launch_factor,
    load_calibration,
    record_launches,
)
from wizard.cli import main
from wizard.gpus import describe
from wizard.manifest import load_manifest
from wizard.measured import record_measurements
from wizard.model_meta import load_model_meta
from wizard.planner import ModelRequest, plan_models
from wizard.repository import Repository
from wizard.units import GiB
from wizard.vllm_log import ModelLoadLog

# Real vLLM lines: V1 0.8.5 on an L40S, https://github.com/vllm-project/vllm/pull/17122
V1_085 = [
    "INFO 04-24 16:33:00 [gpu_model_runner.py:1316] Model loading took 14.9889 GiB and 3.652170 seconds",
    "INFO 04-24 16:33:13 [kv_cache_utils.py:634] GPU KV cache size: 158,656 tokens",
    "INFO 04-24 16:33:13 [kv_cache_utils.py:637] Maximum concurrency for 32,768 tokens per request: 4.84x",
]
# V0 0.6.4 on an RTX 3090, https://github.com/vllm-project/vllm/issues/10517
V0_064 = [
    "INFO 11-21 03:38:23 model_runner.py:1077] Loading model weights took 14.9888 GB",
    "INFO 11-21 03:38:33 distributed_gpu_executor.py:57] # GPU blocks: 1478, # CPU blocks: 2048",
]


def test_triton_log_is_split_by_the_model_being_loaded():
    log = ModelLoadLog()
    lines = [
        "I1129 10:00:00.000000 1 server.cc:674] model repository /models, control mode explicit",
        "INFO 04-24 16:32:00 [__init__.py:239] Automatically detected platform cuda.",  # before any load
        "I1129 10:00:01.000000 1 model_lifecycle.cc:473] loading: first:1",
        *V1_085,
        "I1129 10:00:20.000000 1 model_lifecycle.cc:849] successfully loaded 'first'",
        # newer Triton quotes its messages (triton-inference-server/tutorials PR #150's log)
        'I0410 16:58:00.000000 1 model_lifecycle.cc:472] "loading: second:1"',
        *V1_019_TP2.splitlines(),
        "I0410 16:58:08.485508 1 model_lifecycle.cc:849] \"successfully loaded 'second'\"",
        "I1129 10:01:00.000000 1 model_lifecycle.cc:473] loading: old:1",
        *V0_064,
    ]
    for line in lines:
        log.line(line)
    reports = log.reports()
    assert set(reports) == {"first", "second", "old"}
    assert (reports["first"].kv_cache_tokens, reports["first"].max_concurrency) == (158_656, 4.84)
    assert reports["first"].weights_bytes == int(14.9889 * GiB)
    assert (reports["second"].kv_cache_tokens, reports["second"].max_concurrency) == (1_044_688, 127.53)
    assert reports["old"].engine == "V0" and reports["old"].kv_cache_tokens == 1478 * 16
    # a model loaded again: only its last load counts
    log.line("I1129 10:02:00.000000 1 model_lifecycle.cc:473] loading: first:1")
    log.line(V0_064[1])
    assert log.reports()["first"].kv_cache_tokens == 1478 * 16 and log.reports()["first"].weights_bytes is None


def test_launch_factor_makes_the_planned_pool_the_measured_one():
    gib = GiB
    # 3 GiB estimated, the pool came out 1.5 GiB smaller: those terms were 4.5 GiB
    assert (
        launch_factor(
            calibrated_bytes=3 * gib, prior_factor=1.0, planned_kv_bytes=40 * gib, measured_kv_bytes=int(38.5 * gib)
        )
        == 1.5
    )
    # a plan already calibrated x2 (6 GiB) that came out right keeps x2
    assert (
        launch_factor(calibrated_bytes=6 * gib, prior_factor=2.0, planned_kv_bytes=40 * gib, measured_kv_bytes=40 * gib)
        == 2.0
    )
    # bounded
    assert (
        launch_factor(calibrated_bytes=gib, prior_factor=1.0, planned_kv_bytes=80 * gib, measured_kv_bytes=gib)
        == MAX_FACTOR
    )
    assert (
        launch_factor(calibrated_bytes=gib, prior_factor=1.0, planned_kv_bytes=gib, measured_kv_bytes=80 * gib) == 0.5
    )


def test_the_store_is_per_gpu_and_vllm_and_survives_a_bad_file():
    assert load_calibration() == Calibration()
    record_launches(
        [Launch("NVIDIA L40S", "0.19.0", "a", 10, 9, 1.2), Launch("NVIDIA L40S", "0.19.0", "b", 10, 8, 1.6)]
    )
    record_launches([Launch("NVIDIA L40S", "0.24.0", "a", 10, 10, 1.0)])
    calibration = load_calibration()
    assert calibration.adjustment("NVIDIA L40S", "0.19.0").launches == 2
    assert calibration.adjustment("NVIDIA L40S", "0.19.0").factor == 1.4
    assert calibration.adjustment("NVIDIA L40S", "0.24.0").factor == 1.0
    assert calibration.adjustment("NVIDIA H100 80GB HBM3", "0.19.0") is None
    assert not list(calibration_path().parent.glob("*.tmp*"))
    calibration_path().write_text("{not json")
    assert load_calibration() == Calibration()
    calibration_path().write_text(json.dumps({"launches": [{"gpu": "x"}, "junk"]}))
    assert load_calibration() == Calibration()


def test_a_calibrated_plan_matches_what_was_measured_and_says_so(tmp_path):
    meta = load_model_meta(str(write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")))
    inventory = describe("L40S")
    [before] = plan_models(inventory, [ModelRequest(meta, "l8")], fill=True, vllm_version="0.19.0").models
    assert "calibrated" not in before.reason
    planned = before.extra["kv_cache_bytes_per_gpu"]
    measured = planned - 2 * GiB  # vLLM made 2 GiB less KV cache than planned
    factor = launch_factor(
        calibrated_bytes=before.extra["calibrated_bytes_per_gpu"],
        prior_factor=before.extra["calibration_factor"],
        planned_kv_bytes=planned,
        measured_kv_bytes=measured,
    )
    gpu = before.extra["gpu_name"]
    record_launches([Launch(gpu, "0.19.0", "l8", planned, measured, factor)] * 2)
    [after] = plan_models(
        inventory, [ModelRequest(meta, "l8")], fill=True, vllm_version="0.19.0", calibration=load_calibration()
    ).models
    assert after.gpu_memory_utilization == before.gpu_memory_utilization
    assert abs(after.extra["kv_cache_bytes_per_gpu"] - measured) < 1024**2  # the pool vLLM really made
    assert after.kv_cache_tokens < before.kv_cache_tokens
    assert "calibrated from 2 launches on this machine" in after.reason
    # another vLLM release on the same GPU is not calibrated by them
    [other] = plan_models(
        inventory, [ModelRequest(meta, "l8")], fill=True, vllm_version="0.24.0", calibration=load_calibration()
    ).models
    assert "calibrated" not in other.reason


def _added(tmp_path, gpus="L40S"):
    folder = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    root = tmp_path / "repo"
    repo = Repository.open(root, create=True)
    execute_add(repo, prepare_add(repo, [AddRequest(str(folder))], inventory=describe(gpus)))
    return folder, root


def test_a_load_is_recorded_in_the_manifest_and_calibrates(tmp_path, capsys):
    folder, root = _added(tmp_path)
    plan = load_manifest(root).get("l8").plan
    log = ModelLoadLog()
    for line in ["I1129 10:00:01.000000 1 model_lifecycle.cc:473] loading: l8:1", *V1_085]:
        log.line(line)
    notes = record_measurements(root, log.reports(), {"l8"})
    entry = load_manifest(root).get("l8")
    assert entry.measured["kv_cache_tokens"] == 158_656 and entry.measured["max_concurrency"] == 4.84
    assert entry.measured["gpu_memory_utilization"] == plan.gpu_memory_utilization
    # 158,656 tokens is far below this plan's pool: a warning, and the next plan is calibrated
    assert plan.kv_cache_tokens * 0.9 > 158_656
    [note] = notes
    assert note.startswith("l8: vLLM made 158,656 tokens of KV cache")
    [launch] = load_calibration().launches
    assert launch.gpu == plan.extra["gpu_name"] and launch.vllm == plan.extra["vllm_version"]

    assert main(["status", "--repository", str(root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["models"]
    assert row["measured"] == {"weights_bytes": int(14.9889 * GiB), "kv_cache_tokens": 158_656, "max_concurrency": 4.84}
    assert "158,656 tokens" in row["measured_warning"]
    assert main(["status", "--repository", str(root)]) == 0
    out = capsys.readouterr().out
    assert "measured weights 15.0 GiB/GPU (plan 15.0 GiB)" in out and "KV cache 158,656 tokens (plan " in out
    assert "warning: vLLM made 158,656 tokens" in out

    assert main(["plan", str(folder), "--gpus", "L40S", "--json"]) in (0, 1)
    [model] = json.loads(capsys.readouterr().out)["models"]
    assert "calibrated from 1 launch on this machine" in model["reason"]


def test_a_model_not_loaded_by_this_run_and_a_close_measurement_leave_no_warning(tmp_path, capsys):
    _folder, root = _added(tmp_path, "H100-80GB")
    assert record_measurements(root, {}, {"l8"}) == []
    plan = load_manifest(root).get("l8").plan
    log = ModelLoadLog()
    log.line("I1129 10:00:01.000000 1 model_lifecycle.cc:473] loading: l8:1")
    log.line(f"INFO 04-24 16:33:13 [kv_cache_utils.py:634] GPU KV cache size: {plan.kv_cache_tokens:,} tokens")
    assert record_measurements(root, log.reports(), set()) == []  # not loaded now: not recorded
    assert not load_manifest(root).get("l8").measured
    assert record_measurements(root, log.reports(), {"l8"}) == []
    assert main(["status", "--repository", str(root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["models"]
    assert row["measured"] == {"weights_bytes": None, "kv_cache_tokens": plan.kv_cache_tokens, "max_concurrency": None}
    assert row["measured_warning"] is None


def test_status_json_says_null_before_any_load(tmp_path, capsys):
    _folder, root = _added(tmp_path)
    assert main(["status", "--repository", str(root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["models"]
    assert row["measured"] is None and row["measured_warning"] is None


@pytest.mark.parametrize("bad", ['measured = "x"', "measured = { kv_cache_tokens = true }"])
def test_a_broken_measured_table_is_a_manifest_error(tmp_path, bad):
    from wizard.manifest import ManifestError

    _folder, root = _added(tmp_path)
    path = root / "modelwiz.toml"
    text = path.read_text()
    path.write_text(text.replace('state = "complete"', f'state = "complete"\n{bad}', 1))
    with pytest.raises(ManifestError, match="measured is not a table of numbers"):
        load_manifest(root)


@pytest.mark.podman
def test_up_over_real_podman_records_what_vllm_measured_and_the_next_plan_is_calibrated(
    tmp_path, podman_service, podman_client, standin_image, cdi_gpus, monkeypatch, capsys
):
    """The stand-in Triton prints vllm PR #17122's real load lines for each model it loads;
    `modelwiz up` reads them from the container's log as each model loads."""
    from tests.fixtures_podman import free_port
    from tests.fixtures_repository import write_model_folder

    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    repo = tmp_path / "r"
    first, second = write_model_folder(tmp_path / "first"), write_model_folder(tmp_path / "second")
    gpus = ["--gpus", "H100-80GB"]
    assert main(["add", str(first), str(second), "--repository", str(repo), *gpus, "--yes", "--no-launch"]) == 0
    capsys.readouterr()
    assert main(["status", "--repository", str(repo), "--json"]) == 0
    assert [m["measured"] for m in json.loads(capsys.readouterr().out)["models"]] == [None, None]
    name = podman_service.container_name()
    ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    try:
        assert main(["up", "--repository", str(repo), "--image", standin_image, "--name", name, *ports]) == 0
        err = capsys.readouterr().err
        assert "first: vLLM made 158,656 tokens of KV cache" in err  # far below a tiny model's plan
        assert main(["status", "--repository", str(repo), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["models"]
        expected = {"weights_bytes": int(14.9889 * GiB), "kv_cache_tokens": 158_656, "max_concurrency": 4.84}
        assert {m["name"]: m["measured"] for m in rows} == {"first": expected, "second": expected}
        assert all("158,656 tokens" in m["measured_warning"] for m in rows)
    finally:
        assert main(["down", "--name", name]) == 0
    assert len(load_calibration().launches) == 2
    capsys.readouterr()
    assert main(["plan", str(first), *gpus, "--json"]) == 0
    [model] = json.loads(capsys.readouterr().out)["models"]
    assert "calibrated from 2 launches on this machine" in model["reason"]


def test_a_hand_edited_budget_is_measured_as_served_and_does_not_calibrate(tmp_path, capsys):
    _folder, root = _added(tmp_path)
    model_json = root / "l8" / "1" / "model.json"
    model_json.write_text(json.dumps({**json.loads(model_json.read_text()), "gpu_memory_utilization": 0.6}))
    log = ModelLoadLog()
    for line in ["I1129 10:00:01.000000 1 model_lifecycle.cc:473] loading: l8:1", *V1_085]:
        log.line(line)
    assert record_measurements(root, log.reports(), {"l8"}) == []  # its plan is not what ran: no warning
    assert load_manifest(root).get("l8").measured["gpu_memory_utilization"] == 0.6
    assert load_calibration().launches == ()
    assert main(["status", "--repository", str(root)]) == 0
    assert "at utilization 0.60, not the plan's 0.95" in capsys.readouterr().out


def test_loads_the_follower_missed_are_read_from_the_log_again():
    from wizard.measured import caught_up

    whole = ["I1129 10:00:01.000000 1 model_lifecycle.cc:473] loading: first:1", *V1_085]
    whole += ["I1129 10:00:02.000000 1 model_lifecycle.cc:473] loading: second:1", *V0_064]
    follower = ModelLoadLog()
    for line in whole[:4]:  # stopped before the second model's lines came
        follower.line(line)
    reads = []

    def read_log():
        reads.append(1)
        return whole

    found = caught_up(follower.reports(), {"first", "second"}, read_log)
    assert (found["first"].kv_cache_tokens, found["second"].kv_cache_tokens) == (158_656, 1478 * 16)
    assert reads == [1]
    assert caught_up(found, {"first", "second"}, read_log) == found and reads == [1]  # nothing missing: not read
