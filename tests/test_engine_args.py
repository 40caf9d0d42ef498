import pytest

from wizard import engine_args
from wizard.errors import ModelwizError, UsageError
from wizard.images import image_table, version_tuple

WRITTEN = {
    "model": "/m",
    "tensor_parallel_size": 2,
    "gpu_memory_utilization": 0.5,
    "max_model_len": 4096,
    "dtype": "bfloat16",
    "kv_cache_dtype": "fp8",
}


def test_versions_are_sorted_numerically():
    versions = engine_args.known_versions()
    assert versions[0] == "0.7.3"
    assert versions.index("0.9.2") < versions.index("0.10.1.1") < versions.index("0.33.0")


@pytest.mark.parametrize(
    "release,expected",
    [
        ("0.24.0", "0.24.0"),  # exact
        ("0.9.0", "0.8.4"),  # 25.06's 0.9.0rc1: newest not newer
        ("0.10.2", "0.10.1.1"),
        ("0.12.0", "0.11.1"),
        ("0.40.0", "0.33.0"),
    ],
)
def test_resolve_version(release, expected):
    assert engine_args.resolve_version(release) == expected


def test_too_old_vllm_is_refused_with_a_fix():
    with pytest.raises(UsageError, match="older than any version") as info:
        engine_args.resolve_version("0.4.0")
    assert "image" in info.value.hint


def test_every_image_with_a_known_vllm_resolves():
    for image in image_table():
        try:
            version = engine_args.resolve_version(image.vllm_release)
        except UsageError:
            assert version_tuple(image.vllm_release) < version_tuple("0.7.3")
            continue
        engine_args.check_keys(WRITTEN, version)


@pytest.mark.parametrize("version", engine_args.known_versions())
def test_keys_modelwiz_writes_are_accepted_by_every_version(version):
    engine_args.check_keys({**WRITTEN, **engine_args.request_logging_off(version)}, version)


@pytest.mark.parametrize("version", engine_args.known_versions())
def test_prompts_are_kept_out_of_the_log_with_the_key_each_release_has(version):
    # vLLM <= 0.9 logs requests unless disable_log_requests; from 0.10 logging is off by default
    # (enable_log_requests) and disable_log_requests is gone.
    keys = engine_args.allowed_keys(version)
    quiet = engine_args.request_logging_off(version)
    if version_tuple(version) < (0, 10):
        assert quiet == {"disable_log_requests": True} and "enable_log_requests" not in keys
    else:
        assert quiet == {} and "disable_log_requests" not in keys
        with pytest.raises(ModelwizError, match="disable_log_requests"):
            engine_args.check_keys({"model": "/m", "disable_log_requests": True}, version)


def test_a_release_without_its_own_list_is_checked_against_the_older_one():
    engine_args.check_keys(WRITTEN, "0.10.2")
    with pytest.raises(engine_args.EngineArgsError, match="kv_cache_memory_bytes"):
        engine_args.check_keys({"model": "/m", "kv_cache_memory_bytes": 1}, "0.10.2")


def test_key_missing_in_an_old_version_is_refused():
    engine_args.check_keys({"model": "/m", "kv_cache_memory_bytes": 1}, "0.11.1")
    with pytest.raises(engine_args.EngineArgsError, match="kv_cache_memory_bytes"):
        engine_args.check_keys({"model": "/m", "kv_cache_memory_bytes": 1}, "0.10.1.1")


def test_unknown_version_file():
    with pytest.raises(ModelwizError, match="no engine-argument list"):
        engine_args.allowed_keys("0.0.1")
