import json
from dataclasses import replace

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.fixtures_repository import make_plan
from wizard import engine_args
from wizard.engine_args import EngineArgsError
from wizard.images import find_image, image_table, version_tuple
from wizard.model_config import (
    ConfigError,
    parse_config_pbtxt,
    refuse_unservable,
    render_config_pbtxt,
    render_model_json,
    serving_problems,
    validate_config_pbtxt,
    validate_model_json,
    vllm_problems,
)


def parse(text):
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_kind_gpu_uses_container_local_ids():
    plan = make_plan("a", devices=("3", "5"))
    text = render_config_pbtxt(plan, ("1", "3", "5"))
    config = parse(text)
    assert config.backend == "vllm"
    assert config.max_batch_size == 0
    assert config.model_transaction_policy.decoupled is True
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(group.gpus) == [1, 2]  # host 3 and 5 inside a container given 1, 3, 5
    assert group.count == 1
    assert config.input[0].name == "text_input"
    assert not config.input[0].optional and all(i.optional for i in config.input[1:])
    assert [o.name for o in config.output] == ["text_output"]
    assert vllm_problems(config, tensor_parallel_size=1, container_gpu_count=3) == []


def test_mig_slices_are_numbered_after_whole_gpus():
    plan = make_plan("a", devices=("1:0",))
    config = parse(render_config_pbtxt(plan, ("0", "1:0", "1:1")))
    assert list(config.instance_group[0].gpus) == [1]


def test_kind_model_for_tensor_parallel():
    plan = make_plan("big", tp=2, devices=("0", "1"))
    config = parse(render_config_pbtxt(plan, ("0", "1", "2")))
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_MODEL
    assert group.count == 1 and list(group.gpus) == []
    data = json.loads(render_model_json(plan, model_path="/mnt/big/w", vllm_version="0.24.0"))
    assert data["tensor_parallel_size"] == 2


def test_kind_gpu_with_tp_is_refused():

    plan = replace(make_plan("a", devices=("0", "1")), tensor_parallel_size=2)
    with pytest.raises(ConfigError, match="KIND_GPU with tensor_parallel_size 2"):
        render_config_pbtxt(plan, ("0", "1"))


def test_device_outside_repository_set_is_refused():
    with pytest.raises(ConfigError, match="does not include"):
        render_config_pbtxt(make_plan("a", devices=("2",)), ("0", "1"))


@pytest.mark.parametrize(
    "text,problem",
    [
        ('backend: "python"', 'not "vllm"'),
        ('backend: "vllm" max_batch_size: 8', "max_batch_size is 8"),
        ('backend: "vllm" model_transaction_policy { decoupled: false }', "decoupled is false"),
        ('backend: "vllm" instance_group [ { count: 2 kind: KIND_MODEL } ]', "KIND_MODEL with count 2"),
        ('backend: "vllm" instance_group [ { kind: KIND_CPU } ]', "KIND_CPU"),
        ('backend: "vllm" instance_group [ { kind: KIND_GPU gpus: [ 4 ] } ]', "outside the container"),
    ],
)
def test_rule_breaks_are_named(text, problem):
    problems = vllm_problems(parse(text), container_gpu_count=2, strict=False)
    assert any(problem in p for p in problems), problems


def test_minimal_foreign_config_is_fine_when_not_strict():
    config = parse('backend: "vllm"\ninstance_group [ { count: 1 kind: KIND_MODEL } ]')
    assert vllm_problems(config, strict=False) == []
    assert any("decoupled" in p for p in vllm_problems(config, strict=True))


def test_parse_errors_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="does not parse"):
        parse_config_pbtxt('backnd: "vllm"')
    with pytest.raises(ConfigError, match="does not parse"):
        parse_config_pbtxt('backend: "vllm" instance_group [ { kind: KIND_BOGUS } ]')
    with pytest.raises(ConfigError, match="max_batch_size"):
        validate_config_pbtxt('backend: "vllm" max_batch_size: 4 model_transaction_policy { decoupled: true }')


@pytest.mark.parametrize("version", engine_args.known_versions())
def test_model_json_round_trips_for_every_version(version):
    plan = make_plan("a", util=0.42, max_model_len=8192)
    text = render_model_json(plan, model_path="/opt/app-root/mnt/model_repository/a/A", vllm_version=version)
    data = validate_model_json(text, version)
    quiet = {"disable_log_requests": True} if version_tuple(version) < (0, 10) else {}
    assert data == {
        "model": "/opt/app-root/mnt/model_repository/a/A",
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.42,
        "max_model_len": 8192,
        "dtype": "bfloat16",
        **quiet,
    }


def test_model_json_leaves_dtype_to_vllm_when_unset():
    data = json.loads(render_model_json(make_plan("a", dtype=None), model_path="/m", vllm_version="0.24.0"))
    assert "dtype" not in data


def test_model_json_refuses_key_the_old_vllm_lacks():
    plan = make_plan("a")
    render_model_json(plan, model_path="/m", vllm_version="0.11.1", extra={"kv_cache_memory_bytes": 1 << 30})
    with pytest.raises(EngineArgsError, match=r"0\.10\.1\.1"):
        render_model_json(plan, model_path="/m", vllm_version="0.10.1.1", extra={"kv_cache_memory_bytes": 1 << 30})


def test_model_json_validation_errors():
    with pytest.raises(ConfigError, match="not valid JSON"):
        validate_model_json("{", "0.24.0")
    with pytest.raises(ConfigError, match="JSON object"):
        validate_model_json("[]", "0.24.0")
    with pytest.raises(ConfigError, match='no "model"'):
        validate_model_json("{}", "0.24.0")
    with pytest.raises(EngineArgsError, match="invalid_attribute"):
        validate_model_json('{"model": "m", "invalid_attribute": true}', "0.24.0")


def _batched_plan(max_model_len: int):
    from wizard.plan_types import InstanceGroup, ModelPlan

    return ModelPlan(
        model="org/m",
        name="m",
        fits=True,
        reason="",
        tensor_parallel_size=1,
        gpu_memory_utilization=0.5,
        max_model_len=max_model_len,
        dtype=None,
        instance_group=InstanceGroup("KIND_GPU", 1, (0,)),
        weights_bytes=1,
        kv_cache_bytes_per_token=1,
        kv_cache_tokens=1,
        max_concurrency=1.0,
        devices=("0",),
        extra={"max_num_batched_tokens": 2048, "max_num_seqs": 256},
    )


def test_v0_images_get_chunked_prefill_when_the_batch_is_shorter_than_the_context():
    # Inside Triton, vLLM < 0.10.2 runs V0 (25.04-25.09), which refuses max_num_batched_tokens <
    # max_model_len without chunked prefill; V1 (25.10 on) chunks by default.
    from wizard.model_config import engine_args

    plan = _batched_plan(32768)
    for image in image_table():
        if version_tuple(image.vllm_release) < (0, 7, 3):
            continue
        args = engine_args(plan, model_path="/m", vllm_version=image.vllm_release)
        assert args["max_num_batched_tokens"] == 2048
        if image.engine == "V0":
            assert args["enable_chunked_prefill"] is True, image.short_tag
        else:
            assert "enable_chunked_prefill" not in args, image.short_tag
    assert engine_args(plan, model_path="/m", vllm_version="0.9.2")["enable_chunked_prefill"] is True
    assert "enable_chunked_prefill" not in engine_args(_batched_plan(2048), model_path="/m", vllm_version="0.9.2")


def test_25_10_runs_v1_although_its_vllm_has_no_list_of_its_own():
    from wizard.model_config import engine_args as model_engine_args

    ten = find_image("25.10-vllm-python-py3")
    assert ten.engine == "V1" and engine_args.resolve_version(ten.vllm_release) == "0.10.1.1"
    args = model_engine_args(_batched_plan(32768), model_path="/m", vllm_version=ten.vllm_release)
    assert "enable_chunked_prefill" not in args and "disable_log_requests" not in args


@pytest.mark.parametrize("image", [i for i in image_table() if version_tuple(i.vllm_release) >= (0, 7, 3)], ids=str)
def test_model_json_per_release_passes_that_release_and_what_v0_checks(image):
    """Every image's model.json: its keys are that vLLM's, prompts are not logged, and on V0
    the scheduler check (max_num_batched_tokens >= max_model_len unless chunked) holds."""
    text = render_model_json(_batched_plan(16384), model_path="/m", vllm_version=image.vllm_release)
    data = validate_model_json(text, image.vllm_release)
    if image.engine == "V0":
        assert data["max_num_batched_tokens"] >= data["max_model_len"] or data.get("enable_chunked_prefill")
    logging_key = "disable_log_requests" in engine_args.allowed_keys(engine_args.resolve_version(image.vllm_release))
    assert data.get("disable_log_requests", False) is logging_key


def test_metrics_are_reported_only_on_v1_images():
    plan = make_plan("a", devices=("0",))
    assert "REPORT_CUSTOM_METRICS" in render_config_pbtxt(plan, ("0",), vllm_version="0.24.0")
    assert "REPORT_CUSTOM_METRICS" in render_config_pbtxt(plan, ("0",), vllm_version="0.10.2")
    assert "REPORT_CUSTOM_METRICS" not in render_config_pbtxt(plan, ("0",), vllm_version="0.9.2")
    assert "REPORT_CUSTOM_METRICS" not in render_config_pbtxt(plan, ("0",))


def test_25_03_refuses_kind_gpu_instances_off_the_first_gpu():
    old, fixed = find_image("25.03-vllm-python-py3"), find_image("25.04-vllm-python-py3")
    replicas = make_plan("a", devices=("0", "1"))
    second = make_plan("b", devices=("1",))
    first = make_plan("c", devices=("0",))
    assert serving_problems([replicas], ("0", "1"), fixed) == []
    problems = serving_problems([replicas, second, first], ("0", "1"), old)
    assert len(problems) == 2 and "'a'" in problems[0] and "'b'" in problems[1] and "PR #85" in problems[0]
    assert serving_problems([first], ("0", "1"), old) == []
    with pytest.raises(ConfigError, match="land on GPU 0") as info:
        refuse_unservable([second], ("0", "1"), old)
    assert "25.04" in info.value.hint


def test_one_engine_over_two_mig_slices_is_refused():
    plan = make_plan("a", devices=("0:0", "0:1"), tp=2)
    with pytest.raises(ConfigError, match="MIG slices 0:0, 0:1"):
        render_config_pbtxt(plan, ("0:0", "0:1"))
    assert serving_problems([plan], ("0:0", "0:1"), find_image("26.07-vllm-python-py3"))
