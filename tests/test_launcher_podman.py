"""The launcher against real podman and the stand-in Triton image (tests/standin/)."""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import pytest

from tests.fixtures_podman import free_port, host_ulimits
from wizard import launcher
from wizard.container import launch_spec_for
from wizard.errors import ModelwizError
from wizard.preflight import PreflightFailed
from wizard.pull import PullFailed
from wizard.triton_http import TritonHttp

pytestmark = pytest.mark.podman


def write_model(repo: Path, name: str, *, model_json: dict | None = None, config: bool = True) -> None:
    folder = repo / name
    (folder / "1").mkdir(parents=True)
    if config:
        (folder / "config.pbtxt").write_text('backend: "vllm"\ninstance_group [ { count: 1 kind: KIND_MODEL } ]\n')
    if model_json is not None:
        (folder / "1" / "model.json").write_text(json.dumps(model_json))


GOOD = {"model": "/models/weights", "gpu_memory_utilization": 0.4}


def make_spec(repo: Path, service, image: str, models, devices=("0",), **kw):
    return launch_spec_for(
        repo,
        models=list(models),
        devices=list(devices),
        image=image,
        name=kw.pop("name", None) or service.container_name(),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        ulimits=kw.pop("ulimits", host_ulimits()),
        **kw,
    )


def exec_out(client, name: str, *cmd: str) -> tuple[int, str]:
    code, (out, err) = client.containers.get(name).exec_run(list(cmd), demux=True)
    return code, (out or b"").decode() + (err or b"").decode()


@pytest.fixture(scope="module")
def running(podman_service, podman_client, standin_image, cdi_gpus, tmp_path_factory):
    """One container with two models, brought up once for the tests that only look at it."""
    repo = tmp_path_factory.mktemp("repo")
    write_model(repo, "alpha", model_json=GOOD)
    write_model(repo, "beta", model_json=GOOD)
    spec = make_spec(repo, podman_service, standin_image, ["alpha", "beta"])
    events, logs = [], []
    result = launcher.up(
        spec,
        podman_client,
        cdi_dirs=cdi_gpus,
        on_event=events.append,
        on_log=logs.append,
        live_timeout_s=30,
        poll_s=0.1,
    )
    return spec, result, events, logs, repo


def test_up_loads_models_and_reports_endpoints(running, podman_client):
    spec, result, events, logs, _ = running
    assert result.loaded == ("alpha", "beta") and not result.reused
    http = TritonHttp(spec.http_url)
    assert http.model_ready("alpha") and http.model_ready("beta")
    stages = [e.stage for e in events]
    assert stages.index("live") < stages.index("load") < stages.index("ready")
    assert any("successfully loaded 'alpha'" in line for line in logs)


def test_models_loaded_one_at_a_time_in_order(running):
    spec, *_ = running
    _status, record = TritonHttp(spec.http_url)._call("GET", "/standin/loads")
    lines = str(record).split("\n")
    assert "OVERLAP" not in str(record)
    assert lines[:4] == ["start alpha", "end alpha", "start beta", "end beta"]


def test_gpu_devices_visible_through_cdi(running, podman_client):
    spec, *_ = running
    code, out = exec_out(
        podman_client, spec.name, "sh", "-c", "ls /dev/nvidia*; tr '\\0' '\\n' < /proc/1/environ | grep NVIDIA_STANDIN"
    )
    assert code == 0
    assert out.split() == ["/dev/nvidia0", "NVIDIA_STANDIN_CDI=1"]  # only the planned GPU, not "all"


def test_repository_mounted_read_only(running, podman_client):
    spec, *_ = running
    code, out = exec_out(podman_client, spec.name, "sh", "-c", f"ls {spec.mount_point}; touch {spec.mount_point}/x")
    assert code != 0 and "Read-only file system" in out
    assert "alpha" in out.split()


def test_ports_bound_to_loopback_only(running, podman_client):
    spec, *_ = running
    ports = podman_client.containers.get(spec.name).attrs["HostConfig"]["PortBindings"]
    assert ports["8000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(spec.http_port)}]
    assert {b[0]["HostIp"] for b in ports.values()} == {"127.0.0.1"}


def test_compile_caches_outlive_a_recreated_container(podman_service, podman_client, standin_image, cdi_gpus, tmp_path):
    from wizard.container import CACHE_DIR, CACHE_ENVIRONMENT

    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["m"])
    try:
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
        _, env = exec_out(podman_client, spec.name, "sh", "-c", "env")
        assert "NVIDIA_VISIBLE_DEVICES=void" in env.splitlines()  # no legacy hook beside CDI
        assert all(f"{k}={v}" in env.splitlines() for k, v in CACHE_ENVIRONMENT.items())
        code, _ = exec_out(
            podman_client, spec.name, "sh", "-c", f"mkdir -p {CACHE_DIR}/vllm && echo x > {CACHE_DIR}/vllm/k"
        )
        assert code == 0
        launcher.down(podman_client, spec.name)
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
        _, kept = exec_out(podman_client, spec.name, "cat", f"{CACHE_DIR}/vllm/k")
        assert kept.strip() == "x"
    finally:
        launcher.down(podman_client, spec.name)
        podman_service.podman("volume", "rm", "-f", spec.cache_volume, check=False)


def test_listening_on_every_interface_is_reachable_on_loopback(
    podman_service, podman_client, standin_image, cdi_gpus, tmp_path
):
    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["m"], listen="0.0.0.0")
    try:
        result = launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
        assert result.url == f"http://127.0.0.1:{spec.http_port}" and result.loaded == ("m",)
        assert TritonHttp(result.url).model_ready("m")
        bindings = podman_client.containers.get(spec.name).attrs["HostConfig"]["PortBindings"]
        # No host address: every interface, as podman means it (never the literal "0.0.0.0" rule).
        assert {b[0]["HostIp"] for b in bindings.values()} <= {"", "0.0.0.0"}
        assert bindings["8000/tcp"][0]["HostPort"] == str(spec.http_port)
    finally:
        launcher.down(podman_client, spec.name)


def test_container_limits_and_not_privileged(running, podman_client):
    spec, *_ = running
    attrs = podman_client.containers.get(spec.name).attrs
    assert attrs["HostConfig"]["Privileged"] is False
    assert attrs["HostConfig"]["ShmSize"] == 1024**3
    _, out = exec_out(podman_client, spec.name, "sh", "-c", "ulimit -s")
    assert out.strip() == str(67108864 // 1024)
    # nofile/nproc: at most this host's hard limits (and podman's own 1048576), lowered step by
    # step where the podman service's own are lower (here its nproc is below this shell's).
    _code, out = exec_out(podman_client, spec.name, "sh", "-c", "ulimit -n; ulimit -u")
    for got, kind in zip(out.split(), (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC), strict=True):
        asked = min(resource.getrlimit(kind)[1], 1048576)
        assert int(got) in (asked, *(n for n in launcher.LOWER_LIMITS if n < asked))


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 1048576, reason="this host grants podman's default nofile"
)
def test_limits_above_the_hosts_are_refused_with_a_one_line_reason(
    podman_service, podman_client, standin_image, cdi_gpus, tmp_path
):
    """What `up` asked for before it named nofile/nproc (memlock and stack only): podman then drops
    containers.conf's lowered default_ulimits and asks for nofile 1048576, which this host refuses.
    The refusal is explained, not reported as an unexpected error."""
    from wizard.container import STACK_BYTES, Ulimit

    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(
        tmp_path, podman_service, standin_image, ["m"], ulimits=(Ulimit("stack", STACK_BYTES, STACK_BYTES),)
    )
    with pytest.raises(launcher.LaunchFailed) as caught:
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
    assert caught.value.message.startswith("the host refused the container's nofile limit (podman's default)")
    assert "LimitNOFILE=" in caught.value.hint
    assert launcher.find_container(podman_client, spec.name) is None


def test_generate_and_stream_through_the_client(running):
    spec, *_ = running
    http = TritonHttp(spec.http_url)
    body = {"text_input": "hello there", "parameters": {"max_tokens": 8}}
    assert http.generate("alpha", body)["text_output"] == "echo: hello there"
    chunks = [e["text_output"] for e in http.generate_stream("alpha", {**body, "parameters": {"stream": True}})]
    assert "".join(chunks) == "echo: hello there "


def test_rerun_adds_a_model_without_restarting(running, podman_service, podman_client, standin_image, cdi_gpus):
    spec, _, _, _, repo = running
    before = podman_client.containers.get(spec.name).attrs
    write_model(repo, "gamma", model_json=GOOD)
    from dataclasses import replace

    again = replace(spec, models=("alpha", "beta", "gamma"))
    result = launcher.up(again, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
    after = podman_client.containers.get(spec.name).attrs
    assert result.reused and result.loaded == ("gamma",) and result.already_ready == ("alpha", "beta")
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    state = launcher.status(podman_client, spec.name)
    assert state.state == "running"
    assert {m.name: m.state for m in state.models} == {"alpha": "READY", "beta": "READY", "gamma": "READY"}


def test_rerun_with_other_devices_recreates_only_after_confirm(running, podman_client, cdi_gpus):
    spec, *_ = running
    from dataclasses import replace

    other = replace(spec, devices=("1",))
    asked = []
    with pytest.raises(ModelwizError, match="other settings"):
        launcher.up(other, podman_client, cdi_dirs=cdi_gpus, confirm=lambda q: asked.append(q) or False)
    assert asked and "GPUs: 0 -> 1" in asked[0]
    assert podman_client.containers.get(spec.name).status == "running"


def test_failed_load_shows_logs_and_advice(podman_service, podman_client, standin_image, cdi_gpus, tmp_path):
    write_model(tmp_path, "good", model_json=GOOD)
    write_model(
        tmp_path,
        "nokv",
        model_json={
            **GOOD,
            "standin_error": "ValueError: No available memory for the cache blocks. Try increasing gpu_memory_utilization when initializing the engine.",
        },
    )
    write_model(tmp_path, "after", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["good", "nokv", "after"])
    with pytest.raises(launcher.LaunchFailed) as caught:
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
    error = caught.value
    assert error.model == "nokv" and "nokv failed to load" in error.message
    assert any("No available memory for the cache blocks" in line for line in error.log_tail)
    assert error.hint.startswith("the plan's overhead was too low")
    http = TritonHttp(spec.http_url)
    assert http.model_ready("good") and not http.model_ready("after")  # stopped at the failure
    assert launcher.down(podman_client, spec.name) is True
    assert launcher.status(podman_client, spec.name).exists is False


def test_missing_model_json_fails_like_triton(podman_service, podman_client, standin_image, cdi_gpus, tmp_path):
    write_model(tmp_path, "empty", model_json=None)
    spec = make_spec(tmp_path, podman_service, standin_image, ["empty"], devices=["all"])
    with pytest.raises(launcher.LaunchFailed) as caught:
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, live_timeout_s=30, poll_s=0.1)
    assert "'model.json' containing vllm engine args must be provided" in caught.value.message
    assert "1/model.json" in caught.value.hint
    launcher.down(podman_client, spec.name)


def test_memlock_refused_falls_back_with_a_warning(podman_service, podman_client, standin_image, cdi_gpus, tmp_path):
    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["m"])
    assert any(u.name == "memlock" for u in spec.ulimits)  # rootful: Triton's memlock=-1 is asked for
    events = []
    try:
        result = launcher.up(
            spec, podman_client, cdi_dirs=cdi_gpus, on_event=events.append, live_timeout_s=30, poll_s=0.1
        )
        assert result.loaded == ("m",)
    finally:
        launcher.down(podman_client, spec.name)
    # This sandbox has no CAP_SYS_RESOURCE, so podman cannot raise memlock: the launcher says so.
    if any(e.stage == "warning" and "memlock" in e.message for e in events):
        assert True
    else:  # a host that allows it started with memlock on the first try
        assert [e.stage for e in events].count("container") == 1


def test_missing_image_is_a_clear_error(podman_service, podman_client, cdi_gpus, tmp_path):
    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, "localhost/modelwiz-no-such-image:1", ["m"])
    with pytest.raises(PullFailed) as caught:
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus)
    assert "localhost/modelwiz-no-such-image:1" in caught.value.message
    assert "local image" in caught.value.hint
    assert launcher.find_container(podman_client, spec.name) is None


def test_cancel_stops_between_steps_and_the_server_keeps_running(
    podman_service, podman_client, standin_image, cdi_gpus, tmp_path
):
    import threading

    from wizard.errors import Cancelled

    for name in ("a", "b"):
        write_model(tmp_path, name, model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["a", "b"])
    cancel = threading.Event()

    def on_event(event):
        if event.stage == "ready" and event.model == "a":
            cancel.set()  # the user quits while the server is loading

    try:
        with pytest.raises(Cancelled) as caught:
            launcher.up(spec, podman_client, cdi_dirs=cdi_gpus, on_event=on_event, cancel=cancel)
        assert "keeps running" in caught.value.message and "modelwiz down" in caught.value.hint
        states = {m.name: m.state for m in TritonHttp(spec.http_url).repository_index()}
        assert states.get("a") == "READY" and states.get("b") != "READY"  # b was never started
        # Carrying on later loads the rest without a restart.
        result = launcher.up(spec, podman_client, cdi_dirs=cdi_gpus)
        assert result.reused and result.loaded == ("b",)
    finally:
        launcher.down(podman_client, spec.name)


def test_port_taken_fails_before_anything_starts(podman_service, podman_client, standin_image, cdi_gpus, tmp_path):
    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["m"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", spec.http_port))
        busy.listen()
        with pytest.raises(PreflightFailed) as caught:
            launcher.up(spec, podman_client, cdi_dirs=cdi_gpus)
    assert f"port {spec.http_port} on 127.0.0.1 (http) is already in use" in caught.value.message
    assert "--http-port" in caught.value.hint
    assert launcher.find_container(podman_client, spec.name) is None


def test_foreign_container_with_the_name_is_left_alone(
    podman_service, podman_client, standin_image, cdi_gpus, tmp_path
):
    name = podman_service.container_name()
    podman_client.containers.create(standin_image, name=name, command=["sleep", "1"])
    write_model(tmp_path, "m", model_json=GOOD)
    spec = make_spec(tmp_path, podman_service, standin_image, ["m"], name=name)
    with pytest.raises(ModelwizError, match="modelwiz did not create it"):
        launcher.up(spec, podman_client, cdi_dirs=cdi_gpus)
    with pytest.raises(ModelwizError, match="not created by modelwiz"):
        launcher.down(podman_client, name)
    podman_client.containers.get(name).remove(force=True)


def test_stopping_the_log_follower_of_a_quiet_container_is_immediate(podman_service, podman_client, standin_image):
    """The launch follows the server's log; when a model fails to load, the log is quiet, and the
    failure waited on the follower's blocked read until podman's 60 s read timeout before anyone saw it."""
    name = podman_service.container_name()
    container = podman_client.containers.run(
        standin_image, name=name, command=["sh", "-c", "echo started; exec sleep 300"], detach=True
    )
    try:
        lines: list[str] = []
        follower = launcher.LogFollower(container, lines.append).start()
        deadline = time.monotonic() + 20
        while lines != ["started"]:
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        begun = time.monotonic()
        follower.stop()
        assert time.monotonic() - begun < 10  # before: ~60 s, podman's read timeout
    finally:
        container.remove(force=True)
