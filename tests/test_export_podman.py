"""The exported manifests and units, run for real: `podman kube play` and the unit's `podman run`.

The images are the launcher's stand-in Triton (tests/standin/) plus, in a derived image built
offline, two test programs from tests/export_standin/: `tritonserver` that also takes
`--load-model`/`--model-load-thread-count` and loads those models at start as Triton does, and a
`python3` that honours the download script's argument contract (the script itself is tested
against a fake huggingface_hub in test_export_kube.py). Real users point `--image` and
`--init-image` at real images; the tests use the same options.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml  # PyYAML (test dependency, via kubernetes-validate)

from tests.export_helpers import SHA, make_repository
from tests.fixtures_podman import STANDIN_DIR, free_port, frontend_tag
from wizard import launcher
from wizard.cli import main
from wizard.container import CACHE_DIR, create_kwargs
from wizard.export_facts import boot_command, serving_facts
from wizard.export_kube import with_health_check
from wizard.export_systemd import service_unit
from wizard.launch_inputs import HostFacts
from wizard.openai_frontend import FRONTEND_MAIN
from wizard.serve_options import ServeOptions

pytestmark = pytest.mark.podman

EXPORT_STANDIN = Path(__file__).parent / "export_standin"


@pytest.fixture(scope="session")
def export_image(podman_service, standin_build, tmp_path_factory):
    """The stand-in plus the export's test programs, built once (cached by content)."""
    files = {
        "tritonserver-standin": (STANDIN_DIR / "tritonserver").read_bytes(),
        "tritonserver": (EXPORT_STANDIN / "tritonserver").read_bytes(),
        "python3": (EXPORT_STANDIN / "python3").read_bytes(),
        # As in the NGC image: root and triton-server (uid 1000), nobody else.
        "passwd": b"root:x:0:0:root:/root:/bin/sh\ntriton-server:x:1000:1000::/home/triton-server:/bin/sh\n",
    }
    # FROM the content-named stand-in: the shared localhost/tritonserver:test tag may be another session's.
    base_id = podman_service.podman("image", "inspect", "--format", "{{.Id}}", standin_build).stdout.strip()
    digest = hashlib.sha256(base_id.encode() + b"".join(files[k] for k in sorted(files))).hexdigest()[:16]
    tag = f"localhost/modelwiz-export-standin:{digest}"
    if podman_service.podman("image", "exists", tag, check=False).returncode != 0:
        context = tmp_path_factory.mktemp("export-image")
        for name, data in files.items():
            (context / name).write_bytes(data)
            (context / name).chmod(0o644 if name == "passwd" else 0o755)
        (context / "Containerfile").write_text(
            f"FROM {standin_build}\nCOPY tritonserver-standin tritonserver python3 /usr/bin/\nCOPY passwd /etc/passwd\n"
        )
        podman_service.podman("build", "--pull=never", "-q", "-t", tag, str(context))
    return tag


def podman_version(service) -> tuple[int, ...]:
    out = service.podman("--version").stdout
    return tuple(int(x) for x in re.search(r"(\d+)\.(\d+)\.(\d+)", out).groups())


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_ready(base: str, models, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(models)
    while pending and time.monotonic() < deadline:
        pending = [m for m in pending if http_status(f"{base}/v2/models/{m}/ready") != 200]
        time.sleep(0.2)
    assert not pending, f"not ready after {timeout_s}s: {pending}"


def for_podman_kube_play(text: str, version: tuple[int, ...], ports: dict[int, int]) -> str:
    """The two changes `kube play` on this machine needs, and nothing else:

    - podman before 4.6 restarts init containers under the pod's `restartPolicy: Always` (the
      Deployment default) until it times out (containers/podman#16343, fixed by #18481): play it
      with OnFailure there, which runs each init container once, as Kubernetes does;
    - podman 4.3 publishes every containerPort on the host's 0.0.0.0 at the same number: bind
      free ports on 127.0.0.1 instead, so the test neither collides nor exposes anything.
    """
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        if version < (4, 6):
            pod["restartPolicy"] = "OnFailure"
        for container in pod["containers"]:
            for port in container.get("ports", ()):
                port["hostIP"] = "127.0.0.1"
                port["hostPort"] = ports[port["containerPort"]]
    return yaml.safe_dump_all(docs)


# OpenShift's restricted-v2 SCC runs the pod as an arbitrary UID from the namespace's range, in
# group 0, that /etc/passwd does not list; the export leaves runAsUser to it.
ARBITRARY_UID = 1000680000


@pytest.mark.parametrize(
    ("openshift", "frontend"),
    [(False, False), (True, False), (False, True)],
    ids=["image-user", "openshift-arbitrary-uid", "openai-frontend"],
)
def test_kube_manifest_runs_under_podman_kube_play(podman_service, export_image, tmp_path, capsys, openshift, frontend):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2-7B")
    name = podman_service.container_name()
    image = export_image
    if frontend:  # the same image under a release tag with Triton's OpenAI frontend (26.04+)
        image = frontend_tag(export_image)
        podman_service.podman("tag", export_image, image)
    argv = ["export", "kube", "--repository", str(repo.root), "--name", name]
    argv += ["--image", image, "--init-image", export_image] + (["--openshift"] if openshift else [])
    assert main(argv) == 0
    exported = capsys.readouterr().out
    objects = [d for d in yaml.safe_load_all(exported) if d]
    ports = {8000: free_port(), 8001: free_port(), 8002: free_port(), 9000: free_port()}
    played_text = for_podman_kube_play(exported, podman_version(podman_service), ports)
    uid = 1000
    if openshift:  # what the SCC's admission adds to the pod
        docs = list(yaml.safe_load_all(played_text))
        pod = next(d for d in docs if d and d["kind"] == "Deployment")["spec"]["template"]["spec"]
        assert "runAsUser" not in pod["securityContext"]
        pod["securityContext"].update({"runAsUser": ARBITRARY_UID, "runAsGroup": 0})
        played_text, uid = yaml.safe_dump_all(docs), ARBITRARY_UID
    played = tmp_path / "played.yaml"
    played.write_text(played_text)
    volumes = [o["metadata"]["name"] for o in objects if o["kind"] in ("PersistentVolumeClaim", "ConfigMap")]
    # emptyDirs are named volumes under podman 4.3: start from fresh ones, as a new pod does.
    podman_service.podman("volume", "rm", "dshm", "cache", check=False)  # not -f: never one in use
    try:
        podman_service.podman("kube", "play", str(played))
        models = [m.name for m in repo.models()]
        wait_ready(f"http://127.0.0.1:{ports[8000]}", models)
        pod = f"{name}-pod-0"
        triton = f"{pod}-triton"
        mount = repo.manifest.mount_point
        for model in models:
            entry = repo.manifest.get(model)
            weights = f"{mount}/{model}/{entry.weights}"
            # The init container ran with this model's source, pinned commit and file list.
            marker = podman_service.podman("exec", triton, "cat", f"{weights}/.modelwiz-download").stdout
            assert marker.strip() == SHA
            first = podman_service.podman("exec", triton, "cat", f"{weights}/config.json").stdout
            assert first.startswith(f"{entry.source}@{SHA} config.json")
            # Triton sees the repository's own files and the downloaded weights at the mount point.
            for rel in ("config.pbtxt", "1/model.json"):
                inside = podman_service.podman("exec", triton, "cat", f"{mount}/{model}/{rel}").stdout
                expected = (repo.root / model / rel).read_text()
                assert inside == (with_health_check(expected) if rel == "config.pbtxt" else expected)
            listing = podman_service.podman("exec", triton, "ls", weights).stdout.split()
            assert listing == ["config.json", "model.safetensors"]
        refused = podman_service.podman("exec", triton, "touch", f"{mount}/x", check=False)
        assert refused.returncode != 0 and "Read-only" in refused.stdout + refused.stderr
        inspect = json.loads(podman_service.podman("inspect", triton).stdout)[0]
        if frontend:
            assert inspect["Config"]["Cmd"][:2] == ["python3", FRONTEND_MAIN]
            listed = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports[9000]}/v1/models", timeout=5).read())
            assert sorted(m["id"] for m in listed["data"]) == sorted(models)
            return
        assert inspect["Config"]["Cmd"][-1] == "--model-load-thread-count=1"
        # The stand-in starts only where the real image's Python would (getpass, writable caches).
        log = podman_service.podman("logs", triton).stdout + podman_service.podman("logs", triton).stderr
        assert f"running as uid {uid} (USER=triton-server) with HOME=/opt/modelwiz/cache" in log
    finally:
        podman_service.podman("kube", "down", str(played), check=False)
        podman_service.podman("volume", "rm", *volumes, check=False)
        podman_service.podman("volume", "rm", "dshm", "cache", check=False)  # emptyDirs under podman 4.3


@pytest.mark.parametrize("frontend", [False, True], ids=["tritonserver", "openai-frontend"])
def test_service_unit_creates_the_container_modelwiz_up_creates(
    podman_service, podman_client, export_image, cdi_gpus, tmp_path, frontend
):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2-7B")
    models = [m.name for m in repo.models()]
    image = export_image
    if frontend:  # the same image under a release tag with Triton's OpenAI frontend (26.04+)
        image = frontend_tag(export_image)
        podman_service.podman("tag", export_image, image)
    options = ServeOptions(
        image=image,
        openai_port=free_port(),
        name=podman_service.container_name(),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    exported = serving_facts(repo, options, HostFacts.local())
    # The limits `up` settles on with this host's podman (this sandbox refuses memlock).
    spec = launcher._granted_ulimits(podman_client, exported.spec, lambda event: None)
    exported = replace(exported, spec=spec)
    kwargs = create_kwargs(spec)
    # What `modelwiz up` creates.
    up_container = podman_client.containers.create(**kwargs)
    try:
        up_container.start()
        up = json.loads(podman_service.podman("inspect", spec.name).stdout)[0]
    finally:
        up_container.remove(force=True)

    # What the unit's ExecStart creates (systemd's %t/%n filled in, podman pointed at the test service).
    unit = service_unit(exported, podman="podman")
    sections = re.sub(r"\\\n\s*", " ", unit)
    start = re.search(r"^ExecStart=(.*)$", sections, re.M).group(1)
    stop = re.search(r"^ExecStop=(.*)$", sections, re.M).group(1)
    stop_post = re.search(r"^ExecStopPost=(.*)$", sections, re.M).group(1)
    cid = tmp_path / "unit.ctr-id"

    def argv(line: str) -> list[str]:
        import shlex

        words = [w.replace("%t/%n.ctr-id", str(cid)).replace("%%", "%").replace("$$", "$") for w in shlex.split(line)]
        assert words[0] == "podman"
        return ["podman", "--url", podman_service.url, *words[1:]]

    subprocess.run(argv(start), env=podman_service.env, check=True, capture_output=True, text=True, timeout=120)
    try:
        unit_ctr = json.loads(podman_service.podman("inspect", spec.name).stdout)[0]
        wait_ready(spec.http_url, models)  # Triton loaded the models by itself (--load-model)
        if frontend:  # loaded through the frontend, so its own model list has them
            listed = json.loads(urllib.request.urlopen(f"{spec.openai_url}/models", timeout=5).read())
            assert sorted(m["id"] for m in listed["data"]) == sorted(models)
    finally:
        subprocess.run(argv(stop), env=podman_service.env, capture_output=True, timeout=120)
        subprocess.run(argv(stop_post), env=podman_service.env, capture_output=True, timeout=120)
    assert podman_service.podman("container", "exists", spec.name, check=False).returncode == 1
    podman_service.podman("volume", "rm", "-f", spec.cache_volume, check=False)

    def facts(c):
        host = c["HostConfig"]
        return {
            "image": c["ImageName"],
            "name": c["Name"],
            "devices": host.get("Devices"),
            "mounts": sorted((m["Source"], m["Destination"], m["RW"]) for m in c["Mounts"]),
            "ports": host["PortBindings"],
            "shm": host["ShmSize"],
            "ulimits": sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]),
            "security": host.get("SecurityOpt"),
            "labels": c["Config"]["Labels"],
            "env": sorted(e for e in c["Config"]["Env"] if not e.startswith("HOSTNAME=")),
            "privileged": host["Privileged"],
        }

    assert facts(unit_ctr) == facts(up)
    mounts = {target: (source, rw) for source, target, rw in facts(up)["mounts"]}
    assert mounts[repo.manifest.mount_point] == (str(repo.root), False) and len(mounts) == 2
    assert mounts[CACHE_DIR][0].endswith(f"/{spec.cache_volume}/_data") and mounts[CACHE_DIR][1] is True
    assert facts(up)["shm"] == 1024**3
    cmd_up, cmd_unit = up["Config"]["Cmd"], unit_ctr["Config"]["Cmd"]
    assert cmd_unit == list(boot_command(cmd_up, models))
    assert cmd_unit[len(cmd_up) :][: len(models)] == [f"--load-model={m}" for m in models]
    assert (cmd_up[:2] == ["python3", FRONTEND_MAIN]) is frontend
