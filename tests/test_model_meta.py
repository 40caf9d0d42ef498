"""ModelMeta: what the planner reads from config.json and the weights' metadata."""

from __future__ import annotations

import json
import struct
import sys
import types

import pytest

from tests.planner_data import MODELS, config, meta, parameters, qwen_tensors, write_safetensors
from wizard.errors import ModelwizError, UsageError
from wizard.model_meta import ModelMeta, derive_max_model_len, load_model_meta, read_safetensors_parameters
from wizard.units import GiB, KiB

# ---- published figures ---------------------------------------------------------------------


def test_llama2_7b_weights_and_kv_match_published_figures():
    m = meta("Llama-2-7b-hf")
    assert round(m.weights_bytes / GiB, 2) == 12.55  # vLLM logs "took 12.5523 GB"
    assert m.kv_bytes_per_token(1) == 512 * KiB  # 0.5 MiB per token
    assert m.torch_dtype == "float16"


def test_llama3_8b_kv_is_128_kib_per_token():
    assert meta("Llama-3.1-8B").kv_bytes_per_token(1) == 128 * KiB


def test_gqa_kv_divides_by_tensor_parallel_and_replicates_beyond_kv_heads():
    m = meta("Llama-3.1-70B")
    assert m.kv_bytes_per_token(1) == 320 * KiB
    assert m.kv_bytes_per_token(2) == 160 * KiB
    assert m.kv_bytes_per_token(4) == 80 * KiB
    assert m.kv_bytes_per_token(16) == 40 * KiB  # 8 KV heads replicated: max(1, 8 // 16)


def test_mla_caches_one_latent_and_is_not_divided_by_tensor_parallel():
    m = meta("DeepSeek-V2-Lite")
    assert m.is_mla and m.is_moe and m.num_experts == 64
    assert m.kv_bytes_per_token(1) == 27 * (512 + 64) * 2
    assert m.kv_bytes_per_token(2) == m.kv_bytes_per_token(1)
    assert m.derived_max_model_len == 4096 * 40  # yarn: original x factor


def test_moe_counts_every_expert():
    m = meta("Mixtral-8x7B-v0.1")
    assert m.num_experts == 8 and m.experts_per_token == 2
    assert m.weights_bytes == 46_702_792_704 * 2
    assert m.kv_bytes_per_token(1) == 128 * KiB


@pytest.mark.parametrize(
    "name, length",
    [
        ("Llama-2-7b-hf", 4096),
        ("Llama-3.1-8B", 131072),
        ("Llama-3.1-70B", 131072),
        ("Mistral-7B-v0.1", 32768),
        ("Mixtral-8x7B-v0.1", 32768),
        ("Qwen2.5-0.5B", 32768),
    ],
)
def test_derived_max_model_len_as_vllm_derives_it(name, length):
    assert meta(name).derived_max_model_len == length  # llama3 rope type is not multiplied


# ---- vLLM's derivation rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg, expected",
    [
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2.0}}, 8192),
        ({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "dynamic", "factor": 4}}, 16384),
        ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "longrope", "factor": 32}}, 131072),
        ({"max_position_embeddings": 32768, "rope_scaling": {"type": "su", "factor": 4}}, 32768),
        (
            {
                "max_position_embeddings": 32768,
                "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
            },
            131072,
        ),
        ({"max_position_embeddings": 8192, "rope_parameters": {"rope_type": "linear", "factor": 2}}, 16384),
        (
            {
                "model_type": "gemma3_text",
                "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            },
            131072,
        ),
        ({"n_positions": 1024, "max_position_embeddings": 2048}, 1024),  # the smallest key wins
        ({"seq_length": 8192}, 8192),
        ({}, 2048),  # vLLM's default
    ],
)
def test_derive_max_model_len_rules(cfg, expected):
    assert derive_max_model_len(cfg) == expected


def test_text_config_of_a_vision_language_model_is_used():
    text = dict(config("Llama-3.1-8B"))
    vlm = {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "text_config": text,
        "torch_dtype": "float16",
    }
    m = ModelMeta.from_config(vlm, source="vlm", weights_bytes=10 * GiB)
    assert m.num_layers == 32 and m.num_kv_heads == 8 and m.derived_max_model_len == 131072
    assert m.architectures == ("LlavaForConditionalGeneration",)


def test_tensor_parallel_validity_follows_vllm_checks():
    qwen = meta("Qwen2.5-0.5B")  # 14 heads, 2 KV heads
    assert [tp for tp in range(1, 17) if qwen.valid_tensor_parallel(tp)] == [1, 2, 14]
    llama70 = meta("Llama-3.1-70B")  # 64 heads, 8 KV heads
    assert [tp for tp in (1, 2, 3, 4, 8, 16) if llama70.valid_tensor_parallel(tp)] == [1, 2, 4, 8, 16]
    assert meta("DeepSeek-V2-Lite").valid_tensor_parallel(8)  # MLA: only the heads count


def test_sliding_window_layers():
    mistral = meta("Mistral-7B-v0.1")
    assert mistral.sliding_window == 4096 and mistral.sliding_window_layers == 32
    # one request never holds more than window - 1 + batch tokens per sliding layer
    capped = mistral.kv_bytes_for_request(32768, 1, 2048)
    assert capped == (-(-(4095 + 2048) // 16) + 1) * 16 * 128 * KiB
    assert mistral.kv_bytes_for_request(1000, 1, 2048) == (63 + 1) * 16 * 128 * KiB
    qwen = meta("Qwen2.5-0.5B")  # use_sliding_window: false
    assert qwen.sliding_window is None and qwen.sliding_window_layers == 0
    mixed = dict(config("Llama-3.1-8B"), sliding_window=1024, layer_types=["sliding_attention", "full_attention"] * 16)
    m = ModelMeta.from_config(mixed, source="x", weights_bytes=GiB)
    assert m.sliding_window_layers == 16 and m.full_attention_layers == 16
    assert m.kv_bytes_for_request(8192, 1, 2048) == (
        8192 * 16 * 4 * KiB + (-(-(1023 + 2048) // 16) + 1) * 16 * 16 * 4 * KiB
    )


# ---- weight bytes --------------------------------------------------------------------------


def test_weights_from_parameter_counts_by_dtype_including_quantized_layouts():
    cfg = config("Llama-3.1-8B")
    gptq = dict(cfg, quantization_config={"quant_method": "gptq", "bits": 4})
    m = ModelMeta.from_config(gptq, source="q", parameters_by_dtype={"I32": 1_000_000, "F16": 3_000_000})
    assert m.weights_bytes == 4_000_000 + 6_000_000 and m.quantization == "gptq"
    fp32 = ModelMeta.from_config(dict(cfg, torch_dtype="float32"), source="f", parameters_by_dtype={"F32": 100})
    assert fp32.weights_bytes == 200  # dtype=auto loads fp32 as 16 bits
    fp8 = ModelMeta.from_config(cfg, source="f8", parameters_by_dtype={"F8_E4M3": 1000, "BF16": 10})
    assert fp8.weights_bytes == 1020


def test_weights_from_index_total_size_and_from_file_sizes():
    cfg = config("Llama-2-7b-hf")
    assert ModelMeta.from_config(cfg, source="i", weights_bytes=123).weights_source == "index"
    f32 = ModelMeta.from_config(dict(cfg, torch_dtype="float32"), source="i", weights_bytes=400)
    assert f32.weights_bytes == 200
    files = {
        "consolidated.safetensors": 500,
        "model-00001-of-00002.safetensors": 300,
        "model-00002-of-00002.safetensors": 200,
        "original/consolidated.00.pth": 999,
        "README.md": 5,
    }
    m = ModelMeta.from_config(cfg, source="f", file_sizes=files)
    assert m.weights_bytes == 500 and m.weights_source == "files"  # no duplicate copy, no sub-folders
    assert ModelMeta.from_config(cfg, source="b", file_sizes={"pytorch_model.bin": 77}).weights_bytes == 77


def test_no_weights_and_bad_configs_are_usage_errors():
    with pytest.raises(UsageError, match="no weights found"):
        ModelMeta.from_config(config("Llama-2-7b-hf"), source="x", file_sizes={"README.md": 1})
    with pytest.raises(UsageError, match="num_hidden_layers"):
        ModelMeta.from_config({"model_type": "bert_like"}, source="x", weights_bytes=1)


# ---- local directories and safetensors headers ---------------------------------------------


def test_safetensors_header_is_parsed_without_reading_weights(tmp_path):
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"a": ("BF16", [4, 8]), "b": ("F32", [3]), "c": ("BF16", [2, 2])})
    assert read_safetensors_parameters(path) == {"BF16": 36, "F32": 3}
    assert path.stat().st_size == 8 + struct.unpack("<Q", path.read_bytes()[:8])[0] + 36 * 2 + 12


def test_from_local_dir_sums_shards(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config("Qwen2.5-0.5B")))
    tensors = list(qwen_tensors().items())
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", dict(tensors[:100]), with_data=False)
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", dict(tensors[100:]), with_data=False)
    m = ModelMeta.from_local_dir(tmp_path)
    assert m.weights_bytes == parameters("Qwen2.5-0.5B")["BF16"] * 2
    assert m.weights_source == "safetensors" and m.source == str(tmp_path)


def test_from_local_dir_uses_index_when_shards_are_missing(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config("Llama-3.1-8B")))
    write_safetensors(tmp_path / "model-00001-of-00004.safetensors", {"x": ("BF16", [10])})
    index = {
        "metadata": {"total_size": 16_060_522_496},
        "weight_map": {"x": "model-00001-of-00004.safetensors", "y": "model-00002-of-00004.safetensors"},
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    m = ModelMeta.from_local_dir(tmp_path)
    assert m.weights_bytes == 16_060_522_496 and m.weights_source == "index"


def test_damaged_local_dirs_give_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=r"has no config\.json"):
        ModelMeta.from_local_dir(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="not readable JSON"):
        ModelMeta.from_local_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config("Qwen2.5-0.5B")))
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(UsageError, match="implausible safetensors header"):
        ModelMeta.from_local_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 50) + b'{"a": 1')
    with pytest.raises(UsageError, match="cut short"):
        ModelMeta.from_local_dir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    with pytest.raises(UsageError, match="too short"):
        ModelMeta.from_local_dir(tmp_path)


def test_every_test_model_builds(tmp_path):
    for name in MODELS:
        m = meta(name)
        assert m.weights_bytes > 0 and m.num_layers > 0 and m.kv_bytes_per_token(1) > 0


# ---- load_model_meta -----------------------------------------------------------------------


def test_load_model_meta_local_dir_and_bad_refs(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config("Qwen2.5-0.5B")))
    write_safetensors(tmp_path / "model.safetensors", qwen_tensors(), with_data=False)
    assert load_model_meta(str(tmp_path)).weights_bytes == 494_032_768 * 2
    for bad in (str(tmp_path / "missing"), "./nope", "a/b/c", "bad id!"):
        with pytest.raises(UsageError, match="neither a model directory nor a Hugging Face repo id"):
            load_model_meta(bad)


def test_load_model_meta_hub_id_goes_through_wizard_hub(monkeypatch):
    calls = []

    def lookup_model(ref):
        calls.append(ref)
        cfg = config("Llama-3.1-8B") if ref.endswith("8B") else None
        return types.SimpleNamespace(
            config=cfg, parameters_by_dtype=parameters("Llama-3.1-8B"), files={"model.safetensors": 1}, sha="a" * 40
        )

    monkeypatch.setitem(sys.modules, "wizard.hub", types.SimpleNamespace(lookup_model=lookup_model))
    m = load_model_meta("meta-llama/Llama-3.1-8B")
    assert calls == ["meta-llama/Llama-3.1-8B"] and m.source == "meta-llama/Llama-3.1-8B"
    assert m.weights_bytes == 8_030_261_248 * 2
    with pytest.raises(ModelwizError, match=r"has no config\.json"):
        load_model_meta("someone/gguf-only")


# ---- nonsense configs are refused naming the field and value (exit 2) ---------------------------


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"num_key_value_heads": 0}, "num_key_value_heads = 0"),
        ({"num_key_value_heads": 3}, "num_key_value_heads = 3"),  # does not divide 32 heads
        ({"max_position_embeddings": 0}, "max_position_embeddings = 0"),
        ({"max_position_embeddings": -1}, "max_position_embeddings = -1"),
        ({"max_position_embeddings": float("inf")}, "max_position_embeddings = inf"),
        ({"num_attention_heads": 30, "num_key_value_heads": 30}, "num_attention_heads = 30"),  # 4096 / 30
        ({"hidden_size": 10**30}, "hidden_size = 1000000000000000000000000000000"),
        ({"num_hidden_layers": 10**18}, "num_hidden_layers = 1000000000000000000"),
        ({"hidden_size": 0}, "hidden_size = 0"),
    ],
)
def test_nonsense_configs_are_refused_naming_the_field_and_value(edit, named):
    cfg = {**config("Llama-2-7b-hf"), **edit}
    with pytest.raises(UsageError) as info:
        ModelMeta.from_config(cfg, source="m", parameters_by_dtype=parameters("Llama-2-7b-hf"))
    assert named in info.value.one_line() and "config.json" in info.value.one_line()
    assert info.value.exit_code == 2


def test_an_infinite_length_from_a_local_config_json_is_refused(tmp_path):
    """`1e400` parses as inf: it used to end in an OverflowError."""
    text = json.dumps(config("Qwen2.5-0.5B")).replace(
        '"max_position_embeddings": 32768', '"max_position_embeddings": 1e400'
    )
    assert "1e400" in text
    (tmp_path / "config.json").write_text(text)
    write_safetensors(tmp_path / "model.safetensors", {"x": ("BF16", [10])})
    with pytest.raises(UsageError, match="max_position_embeddings = inf"):
        ModelMeta.from_local_dir(tmp_path)


def test_a_deeply_nested_config_json_is_bad_input_not_a_crash(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100_000)
    with pytest.raises(UsageError, match="nested too deeply"):
        ModelMeta.from_local_dir(tmp_path)


def test_one_dtype_table_for_the_hub_and_the_planner():
    """hub.estimate_weight_bytes uses model_meta's table (FP4 and FP8 variants included)."""
    from wizard import hub, model_meta

    assert not hasattr(hub, "_DTYPE_BYTES")
    assert hub.DTYPE_BYTES is model_meta.DTYPE_BYTES
    assert hub.estimate_weight_bytes({"F4": 10, "F8_E4M3FN": 10, "BF16": 10}) == 5 + 10 + 20
