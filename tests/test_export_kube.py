import json
import os
import posixpath
import re
import subprocess
import sys
import textwrap
from dataclasses import replace

import kubernetes_validate  # test dependency: the Kubernetes API schemas, strict mode
import pytest
import yaml  # PyYAML, which kubernetes-validate brings

from tests.export_helpers import SHA, export_facts, make_repository, up_facts
from wizard.cli import main
from wizard.errors import ModelwizError, UsageError
from wizard.export_facts import weight_files
from wizard.export_kube import (
    CONFIG_ROOT,
    GPU_RESOURCE,
    HEALTH_CHECK,
    KubeOptions,
    dns_label,
    download_script,
    kube_objects,
    render_kube,
    startup_seconds,
    with_health_check,
)
from wizard.model_config import parse_config_pbtxt
from wizard.units import GiB

# A resource name as the API server accepts it: [prefix/]name, DNS-subdomain prefix (no '=').
RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Four 7B models that the joint plan spreads over two H100s."""
    root = tmp_path_factory.mktemp("kube") / "repo"
    return make_repository(
        root, "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2-7B", "mistralai/Mistral-7B-v0.1", "google/gemma-7b"
    )


@pytest.fixture(scope="module")
def tp_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube-tp") / "repo"
    return make_repository(root, "meta-llama/Llama-2-70b-hf", gpus="4xH100-80GB")


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def deployment(objects):
    (dep,) = by_kind(objects, "Deployment")
    return dep


def test_every_object_passes_the_kubernetes_schema_as_written(repo):
    text = render_kube(export_facts(repo), KubeOptions(namespace="ml", storage_class="fast"))
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim"] + ["ConfigMap"] * 4 + ["Deployment", "Service"]
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on an unknown or mistyped field
    # The YAML text is exactly the objects (the writer loses nothing).
    facts = export_facts(repo)
    assert docs == kube_objects(facts, KubeOptions(namespace="ml", storage_class="fast"))


def test_schema_validation_would_catch_a_broken_object(repo):
    objects = kube_objects(export_facts(repo))
    dep = deployment(objects)
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # a typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, kubernetes_validate.latest_version(), strict=True)


def test_gpus_are_requested_the_way_the_device_plugin_reads_them(repo, tp_repo):
    for r in (repo, tp_repo):
        facts = export_facts(r)
        (triton,) = deployment(kube_objects(facts))["spec"]["template"]["spec"]["containers"]
        limits = triton["resources"]["limits"]
        assert limits[GPU_RESOURCE] == str(len(r.used_devices())) and set(limits) == {GPU_RESOURCE, "memory"}
        assert GPU_RESOURCE not in triton["resources"]["requests"]  # the device plugin takes the limit
        for key in limits:
            assert RESOURCE_NAME.match(key) and "=" not in key
    # The tensor-parallel 70B model needs its four GPUs in one pod, hence on one node.
    facts = export_facts(tp_repo)
    assert facts.gpu_count == 4
    spec = deployment(kube_objects(facts))["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert spec["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_triton_runs_the_container_modelwiz_up_creates(repo):
    facts, kwargs = up_facts(repo)
    pod = deployment(kube_objects(facts))["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    assert triton["image"] == kwargs["image"]
    names = [m.name for m in facts.models]
    assert triton["args"] == kwargs["command"] + [f"--load-model={n}" for n in names] + ["--model-load-thread-count=1"]
    assert "command" not in triton  # the image's entrypoint stays, as under podman
    mount_point = repo.manifest.mount_point
    assert {"name": "models", "mountPath": mount_point, "readOnly": True} in triton["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in triton["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    assert kwargs["shm_size"] == 1 * GiB
    claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
    assert claim == by_kind(kube_objects(facts), "PersistentVolumeClaim")[0]["metadata"]["name"]
    assert [(p["name"], p["containerPort"]) for p in triton["ports"]] == [
        ("http", 8000),
        ("grpc", 8001),
        ("metrics", 8002),
    ]
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    # Triton answers HTTP only once the startup loads are done: the startup probe allows for that.
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert triton["securityContext"]["allowPrivilegeEscalation"] is False
    assert triton["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_each_model_gets_its_configmap_and_a_download_of_its_pinned_commit(repo):
    facts = export_facts(repo)
    objects = kube_objects(facts)
    maps = {m["metadata"]["annotations"]["modelwiz/model"]: m for m in by_kind(objects, "ConfigMap")}
    pod = deployment(objects)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount_point = repo.manifest.mount_point
    assert [c["name"] for c in pod["initContainers"]] == [dns_label(f"download-{m.name}") for m in facts.models]
    for model, init in zip(facts.models, pod["initContainers"], strict=False):
        folder = repo.root / model.name
        cm = maps[model.name]
        # The ConfigMap holds the repository's files byte for byte, config.pbtxt with the engine
        # health check switched on (so readiness sees a dead engine).
        assert cm["data"] == {
            "config.pbtxt": with_health_check((folder / "config.pbtxt").read_text()),
            "model.json": (folder / "1/model.json").read_text(),
        }
        assert cm["data"]["config.pbtxt"].startswith((folder / "config.pbtxt").read_text().rstrip("\n"))
        config = parse_config_pbtxt(cm["data"]["config.pbtxt"])
        assert config.parameters[HEALTH_CHECK].string_value == "true"
        assert with_health_check(cm["data"]["config.pbtxt"]) == cm["data"]["config.pbtxt"]
        repo_id, revision, model_dir, weights, config_dir, *files = init["args"]
        assert (repo_id, revision) == (repo.manifest.get(model.name).source, SHA)
        assert model_dir == posixpath.join(mount_point, model.name)
        # vLLM loads exactly the folder the init container downloads into.
        assert json.loads(cm["data"]["model.json"])["model"] == posixpath.join(model_dir, weights)
        assert files == list(weight_files(repo.weights_dir(repo.manifest.get(model.name)))[0])
        assert files == ["config.json", "model.safetensors"]
        assert init["command"][:2] == ["python3", "-c"] and init["command"][2] == download_script()
        assert init["image"] == facts.spec.image
        mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
        assert mounts[mount_point]["name"] == "models" and not mounts[mount_point].get("readOnly")
        cfg_volume = volumes[mounts[config_dir]["name"]]
        assert config_dir == f"{CONFIG_ROOT}/{model.name}"
        assert cfg_volume["configMap"]["name"] == cm["metadata"]["name"]
        env = {e["name"]: e for e in init["env"]}
        assert env["HF_TOKEN"] == {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}},
        }


def test_volume_is_sized_for_the_weights_in_whole_gibibytes(repo):
    facts = export_facts(repo)
    (claim,) = by_kind(kube_objects(facts, KubeOptions(storage_class="fast-ssd")), "PersistentVolumeClaim")
    size = claim["spec"]["resources"]["requests"]["storage"]
    assert re.fullmatch(r"\d+Gi", size)
    assert int(size[:-2]) * GiB >= sum(m.weights_bytes for m in facts.models) + GiB
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_service_and_namespace(repo):
    objects = kube_objects(export_facts(repo), KubeOptions(namespace="inference"))
    assert {o["metadata"]["namespace"] for o in objects} == {"inference"}
    (service,) = by_kind(objects, "Service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8000, "http"),
        ("grpc", 8001, "grpc"),
        ("metrics", 8002, "metrics"),
    ]
    dep = deployment(objects)
    assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert "namespace" not in kube_objects(export_facts(repo))[0]["metadata"]


def test_init_image_can_be_replaced(repo):
    objects = kube_objects(
        export_facts(repo),
        KubeOptions(init_image="registry.example.com/python-hf:3.12", hf_secret="my-hf"),
    )
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["initContainers"]} == {"registry.example.com/python-hf:3.12"}
    assert {c["env"][0]["valueFrom"]["secretKeyRef"]["name"] for c in pod["initContainers"]} == {"my-hf"}


@pytest.mark.parametrize(
    "options",
    [
        KubeOptions(namespace="Bad_NS"),
        KubeOptions(namespace="x" * 64),
        KubeOptions(storage_class="has space"),
        KubeOptions(hf_secret="UPPER"),
        KubeOptions(init_image="two words"),
    ],
)
def test_bad_options_are_refused(repo, options):
    with pytest.raises(UsageError):
        kube_objects(export_facts(repo), options)


def test_names_are_valid_and_distinct():
    a, b = dns_label("modelwiz-triton-my_model"), dns_label("modelwiz-triton-my-model")
    assert a != b and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", a)
    long = dns_label("download-" + "x" * 200)
    assert len(long) <= 63 and long != dns_label("download-" + "x" * 199)
    assert dns_label("plain-name") == "plain-name"


def test_models_a_cluster_cannot_get_are_left_out_and_said_so(tmp_path):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2-7B")
    # A download that never finished, and a foreign model written by hand.
    manifest = repo.manifest
    entry = manifest.get("qwen2-7b")

    from wizard.manifest import STATE_DOWNLOADING

    repo.save(manifest.with_model(replace(entry, state=STATE_DOWNLOADING)))
    foreign = tmp_path / "repo" / "handmade"
    (foreign / "1").mkdir(parents=True)
    (foreign / "config.pbtxt").write_text('backend: "vllm"\ninstance_group [ { count: 1 kind: KIND_MODEL } ]\n')
    (foreign / "1/model.json").write_text('{"model": "facebook/opt-125m"}')
    facts = export_facts(repo)
    assert [m.name for m in facts.models] == ["llama-2-7b-hf"]
    text = render_kube(facts)
    assert "# Not exported: qwen2-7b: not ready" in text
    assert "# Not exported: handmade: not made by modelwiz" in text
    assert [c["name"] for c in deployment(kube_objects(facts))["spec"]["template"]["spec"]["initContainers"]] == [
        "download-llama-2-7b-hf"
    ]


def test_nothing_to_export_is_a_clear_error(tmp_path):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf")
    (repo.root / "llama-2-7b-hf" / "1" / "model.json").write_text('{"model": "/elsewhere"}')
    with pytest.raises(ModelwizError, match=r"no model in .* can be exported"):
        export_facts(repo)


# --- the command -------------------------------------------------------------------------------


def test_cli_writes_atomically_and_never_writes_the_token(tmp_path, capsys, monkeypatch):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf")
    secret = "hf_" + "S3cr3tT0k3nValue" * 2
    monkeypatch.setenv("HF_TOKEN", secret)
    out = tmp_path / "out" / "triton.yaml"
    out.parent.mkdir()
    rc = main(["export", "kube", "--repository", str(repo.root), "--namespace", "ml", "--output", str(out)])
    assert rc == 0
    text = out.read_text()
    assert secret not in text and "secretKeyRef" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["triton.yaml"]  # no temp file left
    assert rc == 0 and capsys.readouterr().out == ""
    assert main(["export", "kube", "--repository", str(repo.root)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("# Triton Inference Server") and secret not in stdout
    assert [d["kind"] for d in yaml.safe_load_all(stdout) if d][-1] == "Service"


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--namespace", "Bad_NS"], 2, "not a valid namespace"),
        (["--output", "/nonexistent-dir/x.yaml"], 2, "does not exist"),
        (["--storage-class", "UPPER"], 2, "StorageClass"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, code, message):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf")
    assert main(["export", "kube", "--repository", str(repo.root), *extra]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_repository(tmp_path, capsys):
    assert main(["export", "kube", "--repository", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- the download script the init containers run -----------------------------------------------

FAKE_HUB = textwrap.dedent(
    """
    # A stand-in for huggingface_hub with the call the script makes; it records it.
    import json, os
    from pathlib import Path

    LOG = Path(os.environ["FAKE_HUB_LOG"])
    REPO_FILES = ["config.json", "model-00001-of-00001.safetensors", "pytorch_model.bin",
                  "original/consolidated.00.pth", "tokenizer.json"]

    def _log(entry):
        with LOG.open("a") as f:
            f.write(json.dumps(entry) + "\\n")

    def snapshot_download(repo_id, *, revision=None, local_dir=None, allow_patterns=None, ignore_patterns=None):
        import fnmatch
        _log({"call": "snapshot_download", "repo_id": repo_id, "revision": revision, "local_dir": local_dir,
              "allow": allow_patterns, "ignore": ignore_patterns,
              "token_seen": bool(os.environ.get("HF_TOKEN"))})
        for name in REPO_FILES:
            if allow_patterns and not any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                continue
            if ignore_patterns and any(fnmatch.fnmatch(name, p) for p in ignore_patterns):
                continue
            path = Path(local_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{repo_id}@{revision}:{name}")
        return local_dir
    """
)


def run_script(tmp_path, files, env_extra=None):
    hub = tmp_path / "fakehub" / "huggingface_hub"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "__init__.py").write_text(FAKE_HUB)
    config = tmp_path / "cm"
    config.mkdir(exist_ok=True)
    (config / "config.pbtxt").write_text('backend: "vllm"\n')
    (config / "model.json").write_text('{"model": "/mnt/m/W"}\n')
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(tmp_path / "fakehub"),
        "FAKE_HUB_LOG": str(tmp_path / "hub.log"),
        **(env_extra or {}),
    }
    model_dir = tmp_path / "vol" / "m"
    proc = subprocess.run(
        [sys.executable, "-c", download_script(), "org/m", SHA, str(model_dir), "W", str(config), *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = (
        [json.loads(line) for line in (tmp_path / "hub.log").read_text().splitlines()]
        if (tmp_path / "hub.log").exists()
        else []
    )
    return proc, model_dir, calls


def test_download_script_fetches_the_listed_files_then_puts_the_config_in_place(tmp_path):
    proc, model_dir, calls = run_script(
        tmp_path, ["config.json", "model-00001-of-00001.safetensors"], {"HF_TOKEN": "hf_secretvalue"}
    )
    assert proc.returncode == 0, proc.stderr
    assert [c["call"] for c in calls] == ["snapshot_download"]
    assert calls[0]["allow"] == ["config.json", "model-00001-of-00001.safetensors"]
    assert calls[0]["revision"] == SHA and calls[0]["token_seen"] is True
    assert sorted(p.name for p in (model_dir / "W").iterdir()) == [
        ".modelwiz-download",
        "config.json",
        "model-00001-of-00001.safetensors",
    ]
    assert (model_dir / "config.pbtxt").read_text() == 'backend: "vllm"\n'
    assert (model_dir / "1/model.json").read_text() == '{"model": "/mnt/m/W"}\n'
    assert "hf_secretvalue" not in proc.stdout + proc.stderr
    # A restarted pod finds the weights complete at that commit and downloads nothing.
    proc, _, calls = run_script(tmp_path, ["config.json"])
    assert proc.returncode == 0 and "already in" in proc.stdout
    assert [c["call"] for c in calls] == ["snapshot_download"]  # still only the first run's call


def test_download_script_needs_the_file_list(tmp_path):
    proc, model_dir, calls = run_script(tmp_path, [])
    assert proc.returncode != 0 and "no files" in proc.stderr
    assert calls == [] and not (model_dir / "config.pbtxt").exists()


def test_file_list_comes_from_the_download_marker(tmp_path):
    from wizard.download import MARKER

    folder = tmp_path / "W"
    (folder / MARKER).parent.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    (folder / "stray.bin").write_bytes(b"y")  # not part of the download
    (folder / MARKER).write_text(json.dumps({"version": 1, "files": {"model.safetensors": 10, "config.json": 5}}))
    assert weight_files(folder) == (("config.json", "model.safetensors"), 15)
    (folder / MARKER).unlink()
    assert weight_files(folder) == (("model.safetensors", "stray.bin"), 11)


def test_download_script_failure_leaves_no_config_for_triton(tmp_path):
    (tmp_path / "fakehub" / "huggingface_hub").mkdir(parents=True)
    proc, model_dir, _ = run_script(tmp_path, ["config.json"], {"FAKE_HUB_LOG": "/nonexistent/dir/log"})
    assert proc.returncode != 0
    assert not (model_dir / "config.pbtxt").exists()  # Triton would skip or fail the model, not load half of it
    assert not (model_dir / "W" / ".modelwiz-download").exists()


# --- hardening: Pod Security "restricted", arbitrary UIDs, resources, placement, probes --------------

# The restricted profile's volume types (kubernetes.io/docs/concepts/security/pod-security-standards).
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
}


def restricted_violations(pod: dict) -> list[str]:
    """The Pod Security Standards' baseline and restricted checks (v1.x), as the admission
    controller applies them to a pod spec; empty when the pod is admitted."""
    found: list[str] = []
    pod_ctx = pod.get("securityContext", {})
    containers = pod.get("initContainers", []) + pod.get("containers", [])
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"pod {key}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for sysctl in pod_ctx.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    if pod_ctx.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for c in containers:
        ctx = c.get("securityContext", {})
        name = c["name"]
        if ctx.get("privileged"):
            found.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{name}: must drop ALL capabilities")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        if ctx.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        selinux = ctx.get("seLinuxOptions", {})
        if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            found.append(f"{name}: seLinux type")
    return found


def test_restricted_checker_catches_what_the_profile_refuses():
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    }
    assert restricted_violations(pod) == []
    bad = json.loads(json.dumps(pod))
    bad["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    bad["containers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    del bad["securityContext"]["runAsNonRoot"]
    assert len(restricted_violations(bad)) == 3


@pytest.mark.parametrize("openshift", [False, True])
def test_the_pod_passes_the_restricted_profile(repo, openshift):
    objects = kube_objects(export_facts(repo), KubeOptions(openshift=openshift))
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    for doc in objects:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    context = pod["securityContext"]
    if openshift:  # restricted-v2 assigns the UID (and refuses one outside the namespace's range)
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context)
    else:  # the NGC image's triton-server user, who can then write the volume (fsGroup)
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (1000, 1000, 1000)


def test_triton_runs_under_an_arbitrary_uid(repo):
    """Nothing the Triton container needs depends on the UID having a passwd entry or a home."""
    pod = deployment(kube_objects(export_facts(repo), KubeOptions(openshift=True)))["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    env = {e["name"]: e["value"] for e in triton["env"]}
    # torch's getpass.getuser() reads these before it asks pwd (which fails for an unlisted UID).
    assert env["USER"] == env["LOGNAME"] == "triton-server"
    # HOME and every compile cache are on a writable volume of the pod.
    cache = next(m["mountPath"] for m in triton["volumeMounts"] if m["name"] == "cache")
    assert {v["name"]: v for v in pod["volumes"]}["cache"] == {"name": "cache", "emptyDir": {}}
    for key in ("HOME", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        assert env[key] == cache or env[key].startswith(cache + "/"), key
    # The device plugin chooses the GPUs through NVIDIA_VISIBLE_DEVICES: the pod spec must not.
    assert "NVIDIA_VISIBLE_DEVICES" not in env and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_requests_affinity_and_probes_follow_the_plan(repo, tp_repo):
    facts = export_facts(repo)
    options = KubeOptions(gpu_products=("NVIDIA H100 80GB HBM3",))
    pod = deployment(kube_objects(facts, options))["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    requests, limits = triton["resources"]["requests"], triton["resources"]["limits"]
    # Four models: CPU for each engine, memory for /dev/shm and each engine's host side.
    assert requests == {"cpu": "9", "memory": "35Gi"} and limits["memory"] == requests["memory"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {
        "matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]
    }
    assert "affinity" not in deployment(kube_objects(facts))["spec"]["template"]["spec"]  # GPUs unknown
    # Startup: never less than 30 minutes, more for more models and more weights.
    startup = triton["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= startup_seconds(facts.models) >= 1800 + 4 * 300
    tp = export_facts(tp_repo)
    assert startup_seconds(tp.models) > startup_seconds(
        (tp.models[0].__class__(**{**tp.models[0].__dict__, "weights_bytes": 0}),)
    )
    # Readiness on the server's ready endpoint, which strict readiness turns red for a dead engine.
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "--strict-readiness=false" not in triton["args"]


def test_cli_pins_the_gpu_product_it_can_read(repo, capsys):
    assert main(["--gpus", "2xH100-80GB", "export", "kube", "--repository", str(repo.root)]) == 0
    text = capsys.readouterr().out
    pod = deployment([d for d in yaml.safe_load_all(text) if d])["spec"]["template"]["spec"]
    values = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert values[0]["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3"]
    assert "runAsUser: 1000" in text and "export with --openshift" in text
    assert main(["export", "kube", "--repository", str(repo.root), "--openshift"]) == 0
    text = capsys.readouterr().out
    assert "runAsUser:" not in text and "restricted-v2 SCC runs the pod as an arbitrary UID" in text
