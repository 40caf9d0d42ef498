"""`modelwiz export kube`: the workstation's Triton deployment as Kubernetes objects.

Pure: from `ServingFacts` (the container `modelwiz up` creates + the repository's models) to a list
of Kubernetes objects as dicts, then YAML text. The objects:

- a PersistentVolumeClaim for the model repository, sized for the weights;
- a ConfigMap per model with its `config.pbtxt` and `model.json`, exactly as the repository has them;
- a Deployment: one init container per model downloads the weights into the volume at the pinned
  commit (huggingface_hub's `snapshot_download`, run by the Triton image's own Python: every
  Triton vLLM image ships huggingface_hub because vLLM needs it, so nothing extra is pulled or
  pip-installed) and then copies the model's ConfigMap into place, so Triton never sees a model
  whose weights are incomplete. Triton runs with the volume mounted read-only at the repository's
  mount point, `nvidia.com/gpu` limits, a memory-backed `/dev/shm`, and probes on Triton's
  health endpoints.

  Why the init container copies the ConfigMap instead of Triton mounting its keys with `subPath`
  over the volume: a file mount under a read-only volume needs the file to exist there first,
  ConfigMap updates never reach `subPath` mounts anyway, and podman's `kube play` (4.3) mounts a
  ConfigMap's `subPath` as a directory, so the manifest would not run as written there;
- a Service for HTTP 8000, gRPC 8001 and metrics 8002.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from dataclasses import dataclass

from wizard.container import CACHE_DIR, VISIBLE_DEVICES, spec_labels
from wizard.errors import UsageError
from wizard.export_facts import TRITON_PORTS, ExportedModel, ServingFacts
from wizard.paths import assets_dir
from wizard.units import GiB
from wizard.yamltext import dump_all

GPU_RESOURCE = "nvidia.com/gpu"  # what the NVIDIA device plugin advertises (never the CDI form)
SHM_VOLUME = "dshm"
MODELS_VOLUME = "models"
CONFIG_ROOT = "/etc/modelwiz/models"  # where an init container sees its model's ConfigMap
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# An annotation key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
_QUALIFIED = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# Pod Security Standards "restricted" for every container (kubernetes.io/docs/concepts/security/
# pod-security-standards): no privilege escalation, all capabilities dropped, RuntimeDefault seccomp.
_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# The NGC Triton image's own user (server build.py: `useradd ... triton-server` with uid 1000).
IMAGE_USER, IMAGE_UID = "triton-server", 1000
CACHE_VOLUME = "cache"
# Set on the Triton container: the compile caches and HOME on a writable volume, and USER/LOGNAME
# because torch (>= 2.11, vLLM >= 0.20) calls getpass.getuser() at import, which falls back to
# pwd.getpwuid() and raises for an arbitrary UID that /etc/passwd does not list (OpenShift's
# restricted-v2): getpass reads LOGNAME/USER first (cpython Lib/getpass.py).
_IDENTITY = {"HOME": CACHE_DIR, "USER": IMAGE_USER, "LOGNAME": IMAGE_USER}
# Host memory of the pod: /dev/shm (memory-backed) plus, per vLLM engine, its process (CUDA
# context, tokenizer, pinned buffers, and V0's 4 GiB swap_space), plus Triton itself. CPU: a core
# for each engine's busy loop and one for tokenization, plus Triton's own.
BASE_MEMORY, MEMORY_PER_MODEL = 2 * GiB, 8 * GiB
BASE_CPU, CPU_PER_MODEL = 1, 2
# Triton answers HTTP only once every startup model has loaded, one at a time, compiling cold
# (the cache volume is per pod). Never less than 30 minutes; then 5 minutes per model (compile and
# CUDA graphs) and 2 minutes per 10 GiB of weights (read from network storage).
STARTUP_BASE_S, STARTUP_PER_MODEL_S, STARTUP_PER_10GIB_S = 1800, 300, 120
STARTUP_PERIOD_S = 10
# The vllm backend's engine health check (BETA, explicit model control): a request that finds the
# engine dead unloads the model (vllm_backend docs/health_check.md), and with Triton's default
# --strict-readiness=true /v2/health/ready then answers 400 (not ready) while any model is unavailable.
HEALTH_CHECK = "ENABLE_VLLM_HEALTH_CHECK"
_HEALTH_CHECK_PARAMETER = f'\nparameters {{\n  key: "{HEALTH_CHECK}"\n  value: {{ string_value: "true" }}\n}}\n'
# The node label GPU Feature Discovery puts on GPU nodes (used by the upstream Triton Kubernetes
# tutorials' nodeAffinity): the product name with its spaces as '-', e.g. NVIDIA-H100-80GB-HBM3.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class KubeOptions:
    namespace: str | None = None  # None: the namespace kubectl is pointed at
    storage_class: str | None = None  # None: the cluster's default StorageClass
    init_image: str | None = None  # None: the Triton image (has python3 + huggingface_hub)
    hf_secret: str = "hf-token"  # Secret holding the Hugging Face token (optional)
    hf_secret_key: str = "token"
    openshift: bool = False  # leave the UID to OpenShift's SCC (an arbitrary one) instead of the image's
    gpu_products: tuple[str, ...] = ()  # the planned GPUs' product names (NVML's); empty: any GPU node


def gpu_product_label(name: str) -> str:
    """A GPU's `nvidia.com/gpu.product` label value, from its NVML name."""
    return "-".join(name.split())


def dns_label(text: str, *, limit: int = 63) -> str:
    """`text` as a DNS-1123 label; a short hash keeps names that had to change distinct."""
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if clean == text and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{clean[: limit - 7].rstrip('-')}-{digest}"


def quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity: `1Gi`, `512Mi`, or plain bytes."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)


def storage_bytes(models: tuple[ExportedModel, ...] | list[ExportedModel]) -> int:
    """The volume size: the weights plus 10% and 1 GiB (tokenizers, download metadata), whole GiB."""
    weights = sum(m.weights_bytes for m in models)
    return max(1, math.ceil((weights * 1.10 + GiB) / GiB)) * GiB


def check_options(options: KubeOptions) -> None:
    if options.namespace is not None and (not _DNS_LABEL.match(options.namespace) or len(options.namespace) > 63):
        raise UsageError(
            f"{options.namespace!r} is not a valid namespace",
            hint="use lowercase letters, digits and '-', at most 63 characters",
        )
    if options.storage_class is not None and (
        not _DNS_SUBDOMAIN.match(options.storage_class) or len(options.storage_class) > 253
    ):
        raise UsageError(
            f"{options.storage_class!r} is not a valid StorageClass name",
            hint="see `kubectl get storageclass` for the names your cluster has",
        )
    if not _DNS_SUBDOMAIN.match(options.hf_secret):
        raise UsageError(
            f"{options.hf_secret!r} is not a valid Secret name", hint="use lowercase letters, digits, '-' and '.'"
        )
    if options.init_image is not None and (not options.init_image or any(c.isspace() for c in options.init_image)):
        raise UsageError(
            f"{options.init_image!r} is not an image reference",
            hint="name an image such as registry.example.com/python-hf:3.12",
        )


def download_script() -> str:
    return (assets_dir() / "templates" / "kube-download.py").read_text()


class _Names:
    def __init__(self, facts: ServingFacts) -> None:
        self.app = dns_label(facts.spec.name)
        self.claim = dns_label(f"{self.app}-models")

    def config_map(self, model: str) -> str:
        return dns_label(f"{self.app}-{model}", limit=253)

    def config_volume(self, model: str) -> str:
        return dns_label(f"config-{model}")

    def init_container(self, model: str) -> str:
        return dns_label(f"download-{model}")


def _metadata(name: str, labels: dict[str, str], options: KubeOptions, **extra) -> dict:
    meta: dict = {"name": name}
    if options.namespace:
        meta["namespace"] = options.namespace
    meta["labels"] = dict(labels)
    meta.update(extra)
    return meta


def _labels(names: _Names) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "triton",
        "app.kubernetes.io/instance": names.app,
        "app.kubernetes.io/managed-by": "modelwiz",
    }


def _selector(names: _Names) -> dict[str, str]:
    return {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": names.app}


def _model_dir(facts: ServingFacts, model: ExportedModel) -> str:
    return posixpath.join(facts.mount_point, model.name)


def _init_container(
    facts: ServingFacts, model: ExportedModel, names: _Names, options: KubeOptions, script: str
) -> dict:
    return {
        "name": names.init_container(model.name),
        "image": options.init_image or facts.spec.image,
        "command": ["python3", "-c", script],
        "args": [
            model.source,
            model.revision,
            _model_dir(facts, model),
            model.weights_dir,
            f"{CONFIG_ROOT}/{model.name}",
            *model.files,
        ],
        "env": [
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": options.hf_secret, "key": options.hf_secret_key, "optional": True}
                },
            },
            {"name": "HF_HOME", "value": "/tmp/huggingface"},
            {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        ],
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": facts.mount_point},
            {"name": names.config_volume(model.name), "mountPath": f"{CONFIG_ROOT}/{model.name}", "readOnly": True},
        ],
        "securityContext": dict(_RESTRICTED),
    }


def _http_probe(path: str, *, period: int, failures: int, timeout: int = 5) -> dict:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _environment(spec_env: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The container's environment as `up` sets it, without NVIDIA_VISIBLE_DEVICES: on a cluster the
    device plugin chooses the GPUs through it, and a value in the pod spec would override that."""
    env = {k: v for k, v in spec_env if k != VISIBLE_DEVICES}
    return {**_IDENTITY, **env}


def startup_seconds(models: tuple[ExportedModel, ...]) -> int:
    weights = sum(m.weights_bytes for m in models)
    return STARTUP_BASE_S + STARTUP_PER_MODEL_S * len(models) + math.ceil(weights / (10 * GiB)) * STARTUP_PER_10GIB_S


def resources(facts: ServingFacts) -> dict:
    """CPU and memory requests (memory limited to the same: Burstable, never BestEffort), GPUs."""
    n = len(facts.models)
    memory = quantity(facts.spec.shm_size_bytes + BASE_MEMORY + MEMORY_PER_MODEL * n)
    requests = {"cpu": str(BASE_CPU + CPU_PER_MODEL * n), "memory": memory}
    limits = {"memory": memory}
    if facts.gpu_count:
        limits[GPU_RESOURCE] = str(facts.gpu_count)
    return {"requests": requests, "limits": limits}


def _triton_container(facts: ServingFacts) -> dict:
    spec = facts.spec
    mounts: list[dict] = [{"name": MODELS_VOLUME, "mountPath": facts.mount_point, "readOnly": True}]
    mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    mounts.append({"name": CACHE_VOLUME, "mountPath": CACHE_DIR})
    ports = sorted(set(spec.host_ports) | set(TRITON_PORTS))
    startup = math.ceil(startup_seconds(facts.models) / STARTUP_PERIOD_S)
    return {
        "name": "triton",
        "image": spec.image,
        # `args`, not `command`: podman keeps the image's entrypoint too (NGC's prints the banner).
        "args": list(facts.boot_command()),
        "ports": [
            {"name": TRITON_PORTS.get(port, f"port-{port}"), "containerPort": port, "protocol": "TCP"} for port in ports
        ],
        "env": [{"name": k, "value": v} for k, v in _environment(spec.environment).items()],
        "resources": resources(facts),
        "volumeMounts": mounts,
        # Triton serves HTTP only after the startup models loaded: give that the time the models
        # need (startup_seconds), then restart a server that stops answering. Readiness turns red
        # when an engine dies (HEALTH_CHECK unloads its model; strict readiness sees that).
        "startupProbe": _http_probe("/v2/health/ready", period=STARTUP_PERIOD_S, failures=startup),
        "livenessProbe": _http_probe("/v2/health/live", period=10, failures=6),
        "readinessProbe": _http_probe("/v2/health/ready", period=5, failures=3),
        "securityContext": dict(_RESTRICTED),
    }


def with_health_check(config_pbtxt: str) -> str:
    """config.pbtxt with the vllm backend's engine health check switched on (unless it says already)."""
    if HEALTH_CHECK in config_pbtxt:
        return config_pbtxt
    return config_pbtxt.rstrip("\n") + "\n" + _HEALTH_CHECK_PARAMETER


def _pod_security(options: KubeOptions) -> dict:
    """The pod's securityContext: non-root, as the image's user (OpenShift: as the SCC's arbitrary
    UID, which restricted-v2 assigns and which a fixed runAsUser would be refused for)."""
    context: dict = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if not options.openshift:
        context.update({"runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID, "fsGroup": IMAGE_UID})
    return context


def _affinity(options: KubeOptions) -> dict | None:
    products = sorted({gpu_product_label(p) for p in options.gpu_products})
    if not products:
        return None
    term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": products}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def kube_objects(facts: ServingFacts, options: KubeOptions = KubeOptions()) -> list[dict]:
    """PersistentVolumeClaim, a ConfigMap per model, the Deployment and the Service."""
    check_options(options)
    names = _Names(facts)
    labels = _labels(names)
    script = download_script()
    claim_spec: dict = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": quantity(storage_bytes(facts.models))}},
    }
    if options.storage_class:
        claim_spec["storageClassName"] = options.storage_class
    objects: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata(names.claim, labels, options),
            "spec": claim_spec,
        }
    ]
    for model in facts.models:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _metadata(
                    names.config_map(model.name),
                    labels,
                    options,
                    annotations={
                        "modelwiz/model": model.name,
                        "modelwiz/source": f"{model.source}@{model.revision}",
                    },
                ),
                "data": {"config.pbtxt": with_health_check(model.config_pbtxt), "model.json": model.model_json},
            }
        )
    volumes: list[dict] = [
        {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": names.claim}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": quantity(facts.spec.shm_size_bytes)}},
        {"name": CACHE_VOLUME, "emptyDir": {}},
    ]
    for model in facts.models:
        volumes.append(
            {
                "name": names.config_volume(model.name),
                "configMap": {
                    "name": names.config_map(model.name),
                    "items": [
                        {"key": "config.pbtxt", "path": "config.pbtxt"},
                        {"key": "model.json", "path": "model.json"},
                    ],
                },
            }
        )
    selector = _selector(names)
    pod_spec: dict = {
        "securityContext": _pod_security(options),
        "initContainers": [_init_container(facts, m, names, options, script) for m in facts.models],
        "containers": [_triton_container(facts)],
        "volumes": volumes,
    }
    affinity = _affinity(options)
    if affinity:
        pod_spec["affinity"] = affinity
    if facts.gpu_count:
        # GPU nodes are commonly tainted so that only pods asking for GPUs land there.
        pod_spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    annotations = {k: v for k, v in spec_labels(facts.spec).items() if _QUALIFIED.match(k)}
    template_meta: dict = {"labels": dict(labels)}
    if annotations:
        template_meta["annotations"] = annotations
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(names.app, labels, options),
            "spec": {
                "replicas": 1,
                # One pod at a time: the GPUs and the ReadWriteOnce volume cannot be shared by two.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {"metadata": template_meta, "spec": pod_spec},
            },
        }
    )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(names.app, labels, options),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                    for port, name in sorted(TRITON_PORTS.items())
                ],
            },
        }
    )
    return objects


def header(facts: ServingFacts, options: KubeOptions) -> list[str]:
    """The comment block on top of the YAML: how to apply it, and what differs from the workstation."""
    names = _Names(facts)
    ns = f" -n {options.namespace}" if options.namespace else ""
    gpus = facts.gpu_count
    products = ", ".join(sorted({gpu_product_label(g) for g in options.gpu_products}))
    pinned = (
        f"the pod schedules only on nodes whose {GPU_PRODUCT_LABEL} is {products}."
        if products
        else "this export could not read the GPUs (pass --gpus) to pin their product."
    )
    ulimits = ", ".join(f"{u.name}={u.hard}" for u in facts.spec.ulimits)
    lines = [
        "Triton Inference Server with the vLLM backend, exported by `modelwiz export kube`.",
        f"Models: {', '.join(f'{m.name} ({m.source}@{m.revision[:12]})' for m in facts.models) or 'none'}",
        f"GPUs: {gpus} x {GPU_RESOURCE} on one node (NVIDIA device plugin or GPU Operator).",
        "",
        "Gated or private models need a Hugging Face token in a Secret (read from the file",
        "`modelwiz login` / `hf auth login` saved, so the token is not on a command line):",
        f"  kubectl{ns} create secret generic {options.hf_secret} \\",
        f"    --from-file={options.hf_secret_key}=${{HF_HOME:-$HOME/.cache/huggingface}}/token",
        f"Apply:  kubectl{ns} apply -f THIS_FILE",
        f"Use:    kubectl{ns} port-forward service/{names.app} 8000:http",
        "",
        "Planned for the workstation's GPUs: gpu_memory_utilization and max_model_len in the",
        "ConfigMaps assume the same GPU model and memory on the cluster node;",
        pinned,
        f"Not expressible in a pod spec: the ulimits podman sets ({ulimits});",
        "the node's container runtime defaults apply. /dev/shm is memory-backed and counts as the pod's memory.",
        f"Startup: up to {startup_seconds(facts.models) // 60} min for the models to load (compile caches",
        "live in an emptyDir, so each new pod compiles cold); readiness turns red when a vLLM engine",
        f"dies ({HEALTH_CHECK} in each config.pbtxt unloads its model).",
        "",
    ]
    if options.openshift:
        lines += [
            "OpenShift: the restricted-v2 SCC runs the pod as an arbitrary UID in group 0; nothing here",
            "sets runAsUser. HOME and the compile caches are on a writable emptyDir, USER/LOGNAME name the",
            f"image's user ({IMAGE_USER}) so Python's getpass works without a passwd entry, and the init",
            "containers write the volume with the same UID Triton reads it with. GPUs come from the NVIDIA",
            "GPU Operator (same nvidia.com/gpu resource). Expose it with a Route:",
            f"  oc{ns} expose service/{names.app} --port=http",
        ]
    else:
        lines += [
            f"Runs as the image's user {IMAGE_USER} (uid {IMAGE_UID}, fsGroup {IMAGE_UID}), non-root, with all",
            "capabilities dropped: the Pod Security Standards' restricted profile admits it.",
            "OpenShift (restricted-v2 assigns an arbitrary UID): export with --openshift.",
        ]
    if any(":" in d for d in facts.gpus):
        lines += [
            "",
            "MIG: the plan uses MIG slices; with the GPU Operator's `mixed` strategy, request",
            "nvidia.com/mig-<profile> instead of nvidia.com/gpu.",
        ]
    for skipped in facts.skipped:
        lines.append(f"Not exported: {skipped}")
    return lines


def render_kube(facts: ServingFacts, options: KubeOptions = KubeOptions()) -> str:
    """The YAML text: a comment header, then one document per object."""
    objects = kube_objects(facts, options)
    return dump_all(objects, header=header(facts, options))
