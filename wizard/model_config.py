"""A model's two Triton files, rendered from its plan and checked against the real schemas.

- `config.pbtxt` is Triton's ModelConfig in protobuf text format. What we write is parsed back with
  `tritonclient.grpc.model_config_pb2.ModelConfig` and checked against the vLLM backend's rules:
  backend "vllm", max_batch_size 0, decoupled transaction policy, KIND_GPU only for
  tensor_parallel_size 1, KIND_MODEL with count 1 for multi-GPU engines.
- `1/model.json` is the keyword arguments of vLLM's `AsyncEngineArgs`; its keys are checked
  against the image's vLLM version (wizard.engine_args).

`instance_group.gpus` are CONTAINER-LOCAL ids: the launcher gives the container exactly the devices
the repository uses (sorted with `sort_devices`), and inside it they are numbered 0..n-1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wizard.engine_args import check_keys, request_logging_off
from wizard.errors import ModelwizError
from wizard.images import ImageInfo, engine_for
from wizard.plan_types import ModelPlan, container_gpu_ids

CONFIG_FILE = "config.pbtxt"
MODEL_JSON = "1/model.json"

# Inputs every vLLM backend since 24.x reads (the backend auto-completes any others it knows).
_INPUTS = (
    ("text_input", "TYPE_STRING", False),
    ("stream", "TYPE_BOOL", True),
    ("sampling_parameters", "TYPE_STRING", True),
    ("exclude_input_in_output", "TYPE_BOOL", True),
)


class ConfigError(ModelwizError):
    """A config.pbtxt or model.json that Triton or vLLM would reject."""


def plan_devices(plan: ModelPlan) -> tuple[str, ...]:
    """The CDI ids of the devices a plan's engines run on ("0", "1:0" for a MIG slice)."""
    if plan.devices:
        return tuple(plan.devices)
    return tuple(str(g) for g in plan.instance_group.gpus)


def container_ids(plan: ModelPlan, repository_devices: Sequence[str]) -> tuple[int, ...]:
    """The plan's devices as numbered inside a container given `repository_devices`."""
    used = tuple(repository_devices)
    out = []
    for device in plan_devices(plan):
        if device not in used:
            raise ConfigError(
                f"model {plan.name!r} runs on device {device}, which the repository's device set "
                f"({', '.join(used) or 'none'}) does not include"
            )
        out.append(container_gpu_ids(used, device))
    return tuple(out)


def comment_text(value: str) -> str:
    """`value` made safe for a `#` comment: a comment ends at the line break, so one in a folder
    name would let the rest be read as configuration. Every character that is not printable
    (line breaks, control characters, U+2028...) and the backslash are written as escapes."""
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii") for ch in value
    )


def mig_problem(plan: ModelPlan) -> str | None:
    """One engine over several MIG slices: CUDA enumerates a single MIG device per process
    (NVIDIA MIG user guide, "CUDA Device Enumeration"), so a tensor-parallel engine cannot span them."""
    slices = [d for d in plan_devices(plan) if ":" in d]
    if plan.tensor_parallel_size > 1 and slices:
        return (
            f"model {plan.name!r}: one vLLM engine over MIG slices {', '.join(slices)} cannot run "
            "(CUDA sees one MIG slice per process)"
        )
    return None


def serving_problems(plans: Sequence[ModelPlan], repository_devices: Sequence[str], image: ImageInfo) -> list[str]:
    """What `image` would serve wrongly in a repository of `plans`: an engine over MIG slices, and on
    images whose backend puts every KIND_GPU instance on the container's first GPU (25.03 and
    older: torch.cuda.set_device, replaced by CUDA_VISIBLE_DEVICES in vllm_backend PR #85, r25.04),
    any KIND_GPU instance meant for another GPU."""
    problems = [p for p in (mig_problem(plan) for plan in plans if plan.fits) if p]
    if image.kind_gpu_routing != "first-gpu":
        return problems
    for plan in plans:
        if not plan.fits or plan.instance_group.kind != "KIND_GPU":
            continue
        ids = container_ids(plan, repository_devices)
        if any(i != 0 for i in ids):
            problems.append(
                f"{image.short_tag}'s vLLM backend puts every KIND_GPU instance on the container's first GPU "
                f"(fixed in 25.04, vllm_backend PR #85): model {plan.name!r} planned on container GPU(s) "
                f"{', '.join(str(i) for i in ids)} would land on GPU 0"
            )
    return problems


def refuse_unservable(plans: Sequence[ModelPlan], repository_devices: Sequence[str], image: ImageInfo) -> None:
    """ConfigError with the first of `serving_problems`, and what to do."""
    problems = serving_problems(plans, repository_devices, image)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            problems[0] + more,
            hint="use an image from 25.04 on (leave out --image to get the newest this driver runs), "
            "or plan one GPU or one MIG slice per engine",
        )


def render_config_pbtxt(plan: ModelPlan, repository_devices: Sequence[str], *, vllm_version: str | None = None) -> str:
    """config.pbtxt for `plan`; `repository_devices` are all devices the repository's models use,
    `vllm_version` the vLLM of the image that will serve it (metrics are reported only on V1).
    Text from a user, a path or the Hub appears only in comments, through `comment_text`."""
    problem = mig_problem(plan)
    if problem:
        raise ConfigError(problem)
    group = plan.instance_group
    lines = [
        f"# Written by modelwiz for {comment_text(plan.model)}. Edits are kept: modelwiz then writes its own",
        "# version beside this file as config.pbtxt.modelwiz-new instead of replacing it.",
        'backend: "vllm"',
        "# vLLM batches requests itself; Triton must not.",
        "max_batch_size: 0",
        "model_transaction_policy {",
        "  decoupled: true",
        "}",
    ]
    lines.append("input [")
    for i, (name, dtype, optional) in enumerate(_INPUTS):
        sep = "," if i < len(_INPUTS) - 1 else ""
        opt = "\n    optional: true" if optional else ""
        lines.append(f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ 1 ]{opt}\n  }}{sep}')
    lines.append("]")
    lines.append("output [")
    lines.append('  {\n    name: "text_output"\n    data_type: TYPE_STRING\n    dims: [ -1 ]\n  }')
    lines.append("]")
    lines.append("instance_group [")
    lines.append("  {")
    if group.kind == "KIND_GPU":
        ids = container_ids(plan, repository_devices)
        host = comment_text(", ".join(plan_devices(plan)))
        lines.append(f"    # host device(s) {host}, numbered as the container sees them")
        lines.append(f"    count: {group.count}")
        lines.append("    kind: KIND_GPU")
        lines.append(f"    gpus: [ {', '.join(str(i) for i in ids)} ]")
    elif group.kind == "KIND_MODEL":
        host = comment_text(", ".join(plan_devices(plan))) or "planned"
        lines.append(
            f"    # one engine over {plan.tensor_parallel_size} GPU(s) (host device(s) {host}); vLLM places it"
        )
        lines.append(f"    count: {group.count}")
        lines.append("    kind: KIND_MODEL")
    else:
        raise ConfigError(f"model {plan.name!r}: instance_group kind {group.kind!r} is not usable with vLLM")
    lines.append("  }")
    lines.append("]")
    if vllm_version and engine_for(vllm_version) == "V1":
        # On V0 images the backend would run an in-process engine to report them
        # (disable_frontend_multiprocessing=self._enable_metrics, vllm_backend r25.06 src/model.py).
        lines.append("parameters {")
        lines.append('  key: "REPORT_CUSTOM_METRICS"')
        lines.append('  value: { string_value: "true" }')
        lines.append("}")
    text = "\n".join(lines) + "\n"
    validate_config_pbtxt(
        text, tensor_parallel_size=plan.tensor_parallel_size, container_gpu_count=len(tuple(repository_devices)) or None
    )
    return text


PLANNED_BATCH_LIMITS = ("max_num_batched_tokens", "max_num_seqs")


def engine_args(
    plan: ModelPlan,
    *,
    model_path: str,
    vllm_version: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The AsyncEngineArgs for `plan`; `model_path` is the weights folder inside the container,
    `vllm_version` the image's vLLM release (its engine and accepted keys decide what is written)."""
    args: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": plan.tensor_parallel_size,
        "gpu_memory_utilization": plan.gpu_memory_utilization,
        "max_model_len": plan.max_model_len,
    }
    if plan.dtype and plan.dtype != "auto":
        args["dtype"] = plan.dtype
    if plan.kv_cache_dtype and plan.kv_cache_dtype != "auto":
        args["kv_cache_dtype"] = plan.kv_cache_dtype
    # The planner sized activations for these batch limits; without them vLLM picks its own
    # (larger on big GPUs) and the plan's margins no longer hold.
    for key in PLANNED_BATCH_LIMITS:
        if key in plan.extra:
            args[key] = int(plan.extra[key])
    # Inside Triton, vLLM before 0.10.2 runs the V0 engine (the backend's engine thread is not the
    # main thread). V0 turns chunked prefill on only above 32K tokens and otherwise refuses
    # max_num_batched_tokens < max_model_len (SchedulerConfig._verify_args). Chunked prefill keeps
    # the planned batch (and so the planned activation memory).
    batch = args.get("max_num_batched_tokens")
    if batch is not None and batch < plan.max_model_len and engine_for(vllm_version) == "V0":
        args["enable_chunked_prefill"] = True
    args.update(request_logging_off(vllm_version))
    for key, value in (extra or {}).items():
        args[key] = value
    check_keys(args, vllm_version)
    return args


def render_model_json(plan: ModelPlan, **options: Any) -> str:
    """model.json text for `plan`; `options` are engine_args' (model_path, vllm_version, extra)."""
    return json.dumps(engine_args(plan, **options), indent=2) + "\n"


def parse_config_pbtxt(text: str) -> Any:
    """Parse with Triton's own ModelConfig schema; ConfigError (one line) when it does not parse."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(f"config.pbtxt does not parse as a Triton ModelConfig: {error}") from None
    return config


def kind_name(kind: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(kind)


def vllm_problems(
    config: Any,
    *,
    tensor_parallel_size: int | None = None,
    container_gpu_count: int | None = None,
    strict: bool = True,
) -> list[str]:
    """What the vLLM backend (or Triton) would reject in a parsed config.

    `strict` also requires what auto-completion would otherwise fill in (max_batch_size 0 and
    the decoupled policy spelled out); use strict=False for configs someone else wrote.
    """
    problems: list[str] = []
    if config.backend != "vllm":
        problems.append(f'backend is {config.backend or "unset"!r}, not "vllm"')
    if config.max_batch_size != 0:
        problems.append(f"max_batch_size is {config.max_batch_size}; the vLLM backend needs 0")
    policy_set = config.HasField("model_transaction_policy")
    if policy_set and not config.model_transaction_policy.decoupled:
        problems.append("model_transaction_policy.decoupled is false; the vLLM backend needs true")
    elif strict and not policy_set:
        problems.append("model_transaction_policy { decoupled: true } is missing")
    if strict and not config.instance_group:
        problems.append("instance_group is missing")
    tp = tensor_parallel_size or 1
    for group in config.instance_group:
        kind = kind_name(group.kind)
        count = group.count or 1
        if kind == "KIND_GPU":
            if tp > 1:
                problems.append(f"KIND_GPU with tensor_parallel_size {tp}: multi-GPU engines need KIND_MODEL")
            if container_gpu_count is not None:
                bad = [g for g in group.gpus if not 0 <= g < container_gpu_count]
                if bad:
                    problems.append(
                        f"instance_group gpus {bad} are outside the container's {container_gpu_count} GPU(s)"
                    )
        elif kind == "KIND_MODEL":
            if count != 1:
                problems.append(f"KIND_MODEL with count {count}: every instance lands on the same GPUs (use count 1)")
            if group.gpus:
                problems.append("KIND_MODEL takes no gpus list")
        elif kind == "KIND_CPU":
            problems.append("KIND_CPU: the vLLM backend runs on GPUs")
        elif strict:
            problems.append(f"instance_group kind {kind} is not what modelwiz writes")
    return problems


def validate_config_pbtxt(
    text: str,
    *,
    tensor_parallel_size: int | None = None,
    container_gpu_count: int | None = None,
) -> Any:
    """Parse and check a config.pbtxt modelwiz writes; ConfigError with every problem."""
    config = parse_config_pbtxt(text)
    problems = vllm_problems(config, tensor_parallel_size=tensor_parallel_size, container_gpu_count=container_gpu_count)
    if problems:
        raise ConfigError("config.pbtxt breaks the vLLM backend's rules: " + "; ".join(problems))
    return config


def parse_model_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"model.json is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError("model.json must be a JSON object (the vLLM engine arguments)")
    return data


# V0 turns chunked prefill on by itself only for contexts above this (vllm/engine/arg_utils.py
# _set_default_args_v0: use_long_context = max_model_len > 32768).
V0_LONG_CONTEXT = 32768


def v0_scheduler_problem(data: Mapping[str, Any]) -> str | None:
    """What vLLM's V0 scheduler refuses at load (SchedulerConfig._verify_args), in its own words."""
    batch, length = data.get("max_num_batched_tokens"), data.get("max_model_len")
    if not isinstance(batch, int) or not isinstance(length, int) or batch >= length:
        return None
    if data.get("enable_chunked_prefill") or (length > V0_LONG_CONTEXT and "enable_chunked_prefill" not in data):
        return None
    return (
        f"ValueError: max_num_batched_tokens ({batch}) is smaller than max_model_len ({length}). "
        "This effectively limits the maximum sequence length to max_num_batched_tokens and makes vLLM "
        "reject longer sequences. Please increase max_num_batched_tokens or decrease max_model_len."
    )


def validate_model_json(text: str, vllm_version: str) -> dict[str, Any]:
    """Parse model.json and check it against vLLM `vllm_version`: its keys, and on the V0 engine
    (images up to 25.09) the scheduler limits V0 refuses."""
    data = parse_model_json(text)
    if "model" not in data:
        raise ConfigError('model.json has no "model" (the weights path or Hub id)')
    check_keys(data, vllm_version)
    problem = v0_scheduler_problem(data) if engine_for(vllm_version) == "V0" else None
    if problem:
        raise ConfigError(
            f"vLLM {vllm_version} runs the V0 engine in Triton and would refuse this model.json: {problem}",
            hint='add "enable_chunked_prefill": true, or raise max_num_batched_tokens to max_model_len',
        )
    return data


def describe_config(config: Any) -> str:
    """One line for status: `vllm, KIND_GPU x1 gpus [0, 1]`."""
    parts = [config.backend or config.platform or "no backend"]
    for group in config.instance_group:
        text = f"{kind_name(group.kind)} x{group.count or 1}"
        if group.gpus:
            text += f" gpus {list(group.gpus)}"
        parts.append(text)
    return ", ".join(parts)
