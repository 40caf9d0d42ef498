"""Pure parts of the launcher: LaunchSpec, preflight checks, pull progress, advice, inputs."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wizard import container as C
from wizard import preflight as P
from wizard.errors import ModelwizError, UsageError
from wizard.launch_inputs import read_launch_inputs
from wizard.launcher import advise, url_from_labels
from wizard.podman_conn import connect, socket_candidates
from wizard.pull import PullTracker
from wizard.triton_http import TritonHttp, TritonHttpError, curl_example, parse_sse


def spec(tmp_path, **kw):
    args = dict(models=["a"], devices=["1", "0"], image="img:1")
    args.update(kw)
    return C.launch_spec_for(tmp_path, **args)


# -- LaunchSpec / create_kwargs --------------------------------------------------------------------


def test_create_kwargs_carries_every_fact(tmp_path):
    kw = C.create_kwargs(spec(tmp_path, mount_point="/srv/models/", http_port=18000))
    assert kw["devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert kw["command"] == ["tritonserver", "--model-repository=/srv/models", "--model-control-mode=explicit"]
    assert kw["mounts"] == [
        {"type": "bind", "source": str(tmp_path.resolve()), "target": "/srv/models", "read_only": True}
    ]
    assert kw["ports"] == {
        "8000/tcp": ("127.0.0.1", 18000),
        "8001/tcp": ("127.0.0.1", 8001),
        "8002/tcp": ("127.0.0.1", 8002),
    }
    assert kw["shm_size"] == 1024**3 and kw["privileged"] is False
    assert {"Name": "memlock", "Soft": 2**64 - 1, "Hard": 2**64 - 1} in kw["ulimits"]
    assert {"Name": "stack", "Soft": 67108864, "Hard": 67108864} in kw["ulimits"]
    assert "security_opt" not in kw
    assert kw["labels"][C.LABEL_MANAGED] == "true" and kw["labels"][C.LABEL_DEVICES] == "0,1"


def test_rootless_has_no_memlock_and_selinux_disables_labels(tmp_path):
    kw = C.create_kwargs(spec(tmp_path, rootless=True, selinux_enforcing=True))
    assert [u["Name"] for u in kw["ulimits"]] == ["stack", "nofile", "nproc"]
    assert kw["security_opt"] == ["disable"]


def test_devices_sorted_mig_and_all(tmp_path):
    assert spec(tmp_path, devices=["1", "0:1", "0"]).devices == ("0", "0:1", "1")
    assert spec(tmp_path, devices=[]).devices == ("all",)
    assert spec(tmp_path, devices=["0", "all"]).cdi_devices == ("nvidia.com/gpu=all",)
    with pytest.raises(UsageError, match="full CDI name"):
        spec(tmp_path, devices=["nvidia.com/gpu=0"])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(models=[]), "no models to load"),
        (dict(image=""), "no container image"),
        (dict(mount_point="models"), "not absolute"),
        (dict(http_port=70000), "out of range"),
        (dict(grpc_port=8000), "must differ"),
    ],
)
def test_bad_spec_input(tmp_path, kw, match):
    with pytest.raises(UsageError, match=match):
        spec(tmp_path, **kw)


def test_recreate_reasons_and_exposed_url(tmp_path):
    s = spec(tmp_path)
    labels = C.spec_labels(s)
    assert C.recreate_reasons(s, labels) == []
    from dataclasses import replace

    assert C.recreate_reasons(replace(s, image="img:2", devices=("0",)), labels) == [
        "image: img:1 -> img:2",
        "GPUs: 0,1 -> 0",
    ]
    # Only the models differ: no restart needed.
    assert C.recreate_reasons(replace(s, models=("a", "b")), labels) == []
    exposed = spec(tmp_path, listen="0.0.0.0", http_port=9000)
    assert exposed.exposed and exposed.http_url == "http://127.0.0.1:9000"
    assert url_from_labels(C.spec_labels(exposed)) == "http://127.0.0.1:9000"


# -- preflight ------------------------------------------------------------------------------------

NVIDIA_CTK_YAML = """---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
  name: GPU-4f1e6c2a-0000-1111-2222-333344445555
-   name: all   # every GPU
    containerEdits: {}
kind: nvidia.com/gpu
"""


def test_parse_cdi_yaml_as_nvidia_ctk_writes_it_and_json():
    assert P.parse_cdi_spec(NVIDIA_CTK_YAML) == (
        "nvidia.com/gpu",
        ("0", "GPU-4f1e6c2a-0000-1111-2222-333344445555", "all"),
    )
    text = json.dumps({"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu", "devices": [{"name": "1:0"}, {"name": "all"}]})
    assert P.parse_cdi_spec(text) == ("nvidia.com/gpu", ("1:0", "all"))


def test_check_cdi(tmp_path):
    problem = P.check_cdi(["0"], [tmp_path])
    assert problem and "no CDI spec for nvidia.com/gpu" in problem.message and "nvidia-ctk cdi generate" in problem.fix
    (tmp_path / "other.yaml").write_text('cdiVersion: 0.5.0\nkind: vendor.com/thing\ndevices:\n- name: "0"\n')
    (tmp_path / "nvidia.yaml").write_text(NVIDIA_CTK_YAML)
    (tmp_path / "broken.json").write_text("{not json")
    assert P.check_cdi(["0", "all"], [tmp_path, tmp_path / "missing"]) is None
    missing = P.check_cdi(["0", "2"], [tmp_path])
    assert missing and "does not name nvidia.com/gpu=2" in missing.message


def test_driver_checks_against_the_image_table():
    from wizard.images import image_table

    newest = [i for i in image_table() if i.min_driver][-1]
    assert P.choose_image(None, None) == newest.tag
    assert P.choose_image("localhost/mine:1", "1.0") == "localhost/mine:1"
    problem = P.check_driver(newest.tag, "100.0")
    assert problem and f"needs NVIDIA driver {newest.min_driver}" in problem.message
    assert P.check_driver(newest.tag, newest.min_driver) is None
    assert P.check_driver("localhost/mine:1", "100.0") is None
    with pytest.raises(P.PreflightFailed, match="older than every known"):
        P.choose_image(None, "1.0")


def test_ports_and_selinux(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problems = P.check_ports("127.0.0.1", {"grpc": port})
    assert [p.fix.split(" or pass ")[1] for p in problems] == ["--grpc-port with a free port"]
    assert P.check_ports("127.0.0.1", {"http": port}) == []
    with pytest.raises(UsageError, match="not an address of this host"):
        P.port_in_use("192.0.2.77", 8000)
    enforce = tmp_path / "enforce"
    assert P.selinux_enforcing(enforce) is False
    enforce.write_text("1\n")
    assert P.selinux_enforcing(enforce) is True


def test_check_all_collects_every_problem(tmp_path):
    s = spec(tmp_path / "gone")
    problems = P.check_all(s, driver_version=None, cdi_dirs=[tmp_path], ports=False)
    assert [p.check for p in problems] == ["repository", "cdi"]
    error = P.PreflightFailed(problems)
    assert "(and 1 more problem(s))" in error.one_line()


# -- pull progress --------------------------------------------------------------------------------


def test_pull_tracker_counts_layers_and_bytes():
    t = iter(range(100)).__next__
    tracker = PullTracker("img:1", clock=lambda: float(t()))
    assert tracker.feed({"status": "Pulling from nvidia/tritonserver", "id": "26.07"}) is None
    tracker.feed({"status": "Pulling fs layer", "id": "a"})
    tracker.feed({"status": "Pulling fs layer", "id": "b"})
    e = tracker.feed({"status": "Downloading", "id": "a", "progressDetail": {"current": 50, "total": 100}})
    assert e.done_bytes == 50 and e.total_bytes is None and e.files_total == 2  # b's size unknown yet
    e = tracker.feed({"status": "Downloading", "id": "b", "progressDetail": {"current": 10, "total": 400}})
    assert (e.done_bytes, e.total_bytes, e.current) == (60, 500, "b")
    e = tracker.feed({"status": "Download complete", "id": "a"})
    assert (e.done_bytes, e.files_done) == (110, 1) and e.rate_bytes_per_s > 0
    tracker.feed({"errorDetail": {"message": "unauthorized"}, "error": "unauthorized: authentication required"})
    assert tracker.error == "unauthorized: authentication required"


# -- advice ---------------------------------------------------------------------------------------


def test_advice_for_known_errors():
    lines = [
        "ValueError: To serve at least one request with the models's max seq len (32768), (4.0 GiB KV cache "
        "is needed, which is larger than the available KV cache memory (2.1 GiB). Based on the available "
        "memory, the estimated maximum model length is 17000.",
        "ValueError: Free memory on device (10.0/79.2 GiB) on startup is less than desired GPU memory utilization (0.9, 71.3 GiB).",
        "ValueError: No available memory for the cache blocks.",
        "ValueError: No available memory for the cache blocks.",
    ]
    advice = advise(lines)
    assert len(advice) == 3
    assert advice[0].startswith("another process holds GPU memory")
    assert advice[1].startswith("the plan's overhead was too low")
    assert "set max_model_len to 16384 or less" in advice[2]
    assert advise(["all good"]) == []


def test_curl_example_sends_max_tokens():
    text = curl_example("http://127.0.0.1:8000", "m")
    body = json.loads(text.split("-d '", 1)[1].rstrip("'"))
    assert body["parameters"]["max_tokens"] == 64 and body["text_input"]


# -- podman connection ----------------------------------------------------------------------------


def test_socket_candidates_order():
    assert [c.url for c in socket_candidates({"CONTAINER_HOST": "tcp://h:1"})] == ["tcp://h:1"]
    got = socket_candidates({"XDG_RUNTIME_DIR": "/run/user/1000"}, uid=1000)
    assert [c.url for c in got] == ["unix:///run/user/1000/podman/podman.sock", "unix:///run/podman/podman.sock"]
    assert socket_candidates({}, uid=7)[0].url == "unix:///run/user/7/podman/podman.sock"


def test_connect_names_the_fix(tmp_path):
    with pytest.raises(ModelwizError) as caught:
        connect({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert "systemctl --user enable --now podman.socket" in caught.value.hint
    sock = tmp_path / "dead.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))  # a socket file nobody answers on
    server.close()
    with pytest.raises(ModelwizError) as caught:
        connect({"CONTAINER_HOST": f"unix://{sock}"})
    assert "unset CONTAINER_HOST" in caught.value.hint


# -- launch inputs --------------------------------------------------------------------------------


def test_launch_inputs_from_a_real_manifest(tmp_path):
    from tests.export_helpers import make_repository
    from wizard.manifest import STATE_DOWNLOADING, load_manifest, save_manifest

    repo = make_repository(tmp_path, "org/alpha", "org/beta")
    got = read_launch_inputs(tmp_path)
    manifest = load_manifest(tmp_path)
    assert got.from_manifest
    assert got.models == ("alpha", "beta")
    assert got.devices == repo.used_devices() and got.devices  # the set config.pbtxt ids count against
    assert (got.image, got.mount_point) == (manifest.image, manifest.mount_point)
    # A model whose download has not finished is never loaded.
    beta = manifest.get("beta")
    save_manifest(tmp_path, manifest.with_model(replace(beta, state=STATE_DOWNLOADING)))
    (tmp_path / "beta" / "config.pbtxt").unlink()
    assert read_launch_inputs(tmp_path).models == ("alpha",)


def test_a_broken_manifest_is_explained(tmp_path):
    from wizard.manifest import ManifestError

    (tmp_path / "modelwiz.toml").write_text("image = [")
    with pytest.raises(ManifestError):
        read_launch_inputs(tmp_path)


def test_launch_inputs_without_manifest_scan_configs(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text("")
    (tmp_path / "weights").mkdir()
    got = read_launch_inputs(tmp_path)
    assert (got.models, got.devices, got.from_manifest) == (("a", "b"), ("all",), False)
    with pytest.raises(UsageError, match="does not exist"):
        read_launch_inputs(tmp_path / "nope")


# -- Triton HTTP client against a faithful fake ------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/health/live" or self.path == "/v2/models/a%2Fb/ready":
            self._send(200)
        else:
            self._send(400, b'{"error":"Model version not ready"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/load"):
            self._send(400, b'{"error":"failed to load \'x\', failed to poll from model repository"}')
        elif self.path == "/v2/repository/index":
            assert json.loads(body) == {}
            self._send(200, b'[{"name":"m","version":"1","state":"READY","reason":""},{"name":"n"}]')
        elif self.path.endswith("/generate_stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"text_output":"Hel"}\n\ndata: {"text_output":"lo"}\n\n')
            self.wfile.write(b'data: {"error":"engine died"}\n\n')
            self.close_connection = True
        else:
            self._send(200, json.dumps({"text_output": json.loads(body)["text_input"]}).encode())


@pytest.fixture
def fake_triton():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield TritonHttp(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def test_triton_http_against_fake(fake_triton):
    assert fake_triton.live() and fake_triton.model_ready("a/b") and not fake_triton.model_ready("c")
    assert [(m.name, m.state) for m in fake_triton.repository_index()] == [("m", "READY"), ("n", "")]
    with pytest.raises(TritonHttpError) as caught:
        fake_triton.load("x")
    assert caught.value.status == 400 and "failed to poll from model repository" in str(caught.value)
    assert fake_triton.generate("m", {"text_input": "hi"}) == {"text_output": "hi"}
    seen = []
    with pytest.raises(TritonHttpError, match="engine died"):
        for event in fake_triton.generate_stream("m", {"text_input": "hi"}):
            seen.append(event["text_output"])
    assert seen == ["Hel", "lo"]


def test_triton_http_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = TritonHttp(f"http://127.0.0.1:{port}", timeout_s=2)
    assert client.live() is False
    with pytest.raises(TritonHttpError, match="connection refused") as caught:
        client.repository_index()
    assert caught.value.status is None


def test_parse_sse_multiline_and_trailing():
    assert list(parse_sse([b'data: {"a":1}\r\n', b"\r\n", b": comment\n", b'data: {"b":\n', b"data: 2}\n", b"\n"])) == [
        {"a": 1},
        {"b": 2},
    ]
    # A trailing event without its blank line was cut off; text that is not JSON is not Triton's.
    with pytest.raises(TritonHttpError, match="cut off"):
        list(parse_sse([b'data: {"a":1}\r\n', b"\r\n", b'data: {"text_output": "hel\n']))
    with pytest.raises(TritonHttpError, match="not JSON"):
        list(parse_sse([b"data: plain\n", b"\n"]))
