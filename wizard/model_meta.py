"""What the memory planner needs to know about a model, read without downloading its weights.

`ModelMeta` is built from a model's `config.json` (the text config for vision-language models, as
vLLM uses `hf_text_config`) plus the byte size of its weights, taken, best first, from safetensors
parameter counts by dtype, a sharded index's `metadata.total_size`, or the checkpoint files' sizes.

The derived context limit reproduces vLLM's `_get_and_verify_max_len` (vllm/config/model.py):
the smallest of the known length keys, multiplied by the RoPE scaling factor except for the
su / longrope / llama3 types (and Gemma 3); yarn starts from `original_max_position_embeddings`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.dtypes import DTYPE_BYTES
from wizard.errors import ModelwizError, UsageError

if TYPE_CHECKING:
    from wizard.hub import HubModel

# Float dtypes vLLM loads in the compute dtype (dtype=auto downcasts fp32 checkpoints to 16 bits).
_WIDE_FLOATS = {"F32", "F64"}

# vLLM's keys for the model's length limit, in its order (`_get_and_verify_max_len`).
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
_DEFAULT_MAX_LEN = 2048  # vLLM's fallback when the config has none of the keys
_ROPE_NOT_SCALED = ("su", "longrope", "llama3")
# Model types vLLM serves with multi-head latent attention when kv_lora_rank is set.
_MLA_MODEL_TYPES = {
    "deepseek_v2",
    "deepseek_v3",
    "deepseek_v32",
    "deepseek_mtp",
    "kimi_k2",
    "kimi_linear",
    "longcat_flash",
    "pangu_ultra_moe",
}
_KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num")
_EXPERT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")
_SAFETENSORS_MAX_HEADER = 100_000_000  # a header larger than this is not a real checkpoint's
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelMeta:
    """The architecture facts and weight size of one model. Sizes are bytes; lengths tokens."""

    source: str  # Hub repo id or local directory
    model_type: str
    architectures: tuple[str, ...]
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width (or the MoE expert width if no dense)
    vocab_size: int
    derived_max_model_len: int  # vLLM's limit for this config
    weights_bytes: int  # what the weights occupy on GPUs, all ranks together
    weights_source: str  # "safetensors" | "index" | "files"
    torch_dtype: str | None = None  # "bfloat16", "float16", "float32", or None
    quantization: str | None = None  # quantization_config.quant_method
    # Multi-head latent attention (DeepSeek): one latent of kv_lora_rank + qk_rope_head_dim per token.
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # Sliding-window attention: the window and how many layers use it (0 = none).
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    # Mixture of experts: routed experts (0 = dense) and experts active per token.
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int | None = None

    # ---- derived facts --------------------------------------------------------------------

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def full_attention_layers(self) -> int:
        return self.num_layers - self.sliding_window_layers

    @property
    def needs_16bit_compute(self) -> bool:
        """True when the checkpoint computes in bf16 or fp32 (fp16 is the fallback below CC 8.0)."""
        return self.torch_dtype in (None, "bfloat16", "float32")

    def valid_tensor_parallel(self, tp: int) -> bool:
        """vLLM's checks: heads divisible by tp; KV heads divisible by tp or tp by them (not MLA)."""
        if tp < 1 or self.num_attention_heads % tp:
            return False
        if self.is_mla or tp == 1:
            return True
        return self.num_kv_heads % tp == 0 or tp % self.num_kv_heads == 0

    def kv_bytes_per_token_per_layer(self, tp: int, kv_dtype_bytes: int = 2) -> int:
        """KV bytes one token costs in one attention layer, on each GPU of a tp group."""
        if self.kv_lora_rank is not None:  # MLA: one latent vector, on every rank (not divided by tp)
            return (self.kv_lora_rank + (self.qk_rope_head_dim or 0)) * kv_dtype_bytes
        return 2 * max(1, self.num_kv_heads // tp) * self.head_dim * kv_dtype_bytes

    def kv_bytes_per_token(self, tp: int = 1, kv_dtype_bytes: int = 2) -> int:
        """KV bytes per token per GPU over all attention layers (what vLLM's pool is sized by)."""
        return self.num_layers * self.kv_bytes_per_token_per_layer(tp, kv_dtype_bytes)

    def kv_bytes_for_request(
        self, length: int, tp: int, max_num_batched_tokens: int, kv_dtype_bytes: int = 2, block: int = 16
    ) -> int:
        """KV memory one request of `length` tokens needs per GPU (vLLM's admission check).

        Full-attention layers hold every token (whole blocks); sliding-window layers hold at most
        `window - 1 + max_num_batched_tokens` tokens plus one block (SlidingWindowSpec).
        """
        per_layer = self.kv_bytes_per_token_per_layer(tp, kv_dtype_bytes)
        full = math.ceil(length / block) * block * per_layer * self.full_attention_layers
        sliding = 0
        if self.sliding_window_layers and self.sliding_window is not None:
            tokens = min(self.sliding_window - 1 + max_num_batched_tokens, length)
            sliding = (math.ceil(tokens / block) + 1) * block * per_layer * self.sliding_window_layers
        return full + sliding

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        source: str,
        parameters_by_dtype: Mapping[str, int] | None = None,
        weights_bytes: int | None = None,
        file_sizes: Mapping[str, int] | None = None,
    ) -> ModelMeta:
        """Build from a config.json dict and one of the weight-size inputs (best first).

        Raises UsageError when the config lacks what the planner needs or no weight size is given.
        """
        outer = dict(config)
        text = _text_config(outer)
        model_type = str(text.get("model_type") or outer.get("model_type") or "")
        layers = _positive_int(text, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), source)
        heads = _positive_int(text, ("num_attention_heads", "n_head", "num_heads", "n_heads"), source)
        hidden = _positive_int(text, ("hidden_size", "n_embd", "d_model", "dim"), source)
        kv_heads = heads
        for key in _KV_HEAD_KEYS:
            if key in text and text[key] is not None:
                kv_heads = _positive_int(text, (key,), source)
                break
        _check_plausible(text, source)
        if heads % kv_heads:
            raise _nonsense(source, _first_key(text, _KV_HEAD_KEYS), kv_heads, f"it must divide the {heads} heads")
        head_dim = text.get("head_dim")
        if not isinstance(head_dim, int) or head_dim <= 0:
            head_dim = text.get("hidden_size_per_head")
        if not isinstance(head_dim, int) or head_dim <= 0:
            if hidden % heads:
                raise _nonsense(
                    source, "num_attention_heads", heads, f"it must divide hidden_size {hidden} (or give head_dim)"
                )
            head_dim = hidden // heads
        kv_lora_rank = text.get("kv_lora_rank")
        mla = model_type in _MLA_MODEL_TYPES and isinstance(kv_lora_rank, int) and kv_lora_rank > 0
        num_experts = next((int(text[k]) for k in _EXPERT_KEYS if isinstance(text.get(k), int) and text[k] > 0), 0)
        window, window_layers = _sliding_window(text, model_type, layers)
        torch_dtype = _dtype_name(
            text.get("torch_dtype") or text.get("dtype") or outer.get("torch_dtype") or outer.get("dtype")
        )
        quant = outer.get("quantization_config") or text.get("quantization_config")
        quantization = None
        if isinstance(quant, Mapping):
            quantization = str(quant.get("quant_method") or quant.get("quant_type") or "unknown")
        weights, weights_source = _weights_bytes(
            source,
            parameters_by_dtype,
            weights_bytes,
            file_sizes,
            halve_wide=torch_dtype == "float32" and quantization is None,
        )
        intermediate = text.get("intermediate_size") or text.get("ffn_dim") or 4 * hidden
        return cls(
            source=source,
            model_type=model_type,
            architectures=tuple(str(a) for a in (outer.get("architectures") or text.get("architectures") or ())),
            num_layers=layers,
            hidden_size=hidden,
            num_attention_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=int(intermediate),
            vocab_size=int(text.get("vocab_size") or 32000),
            derived_max_model_len=derive_max_model_len(text),
            weights_bytes=weights,
            weights_source=weights_source,
            torch_dtype=torch_dtype,
            quantization=quantization,
            kv_lora_rank=kv_lora_rank if mla and isinstance(kv_lora_rank, int) else None,
            qk_rope_head_dim=int(text.get("qk_rope_head_dim") or 0) if mla else None,
            sliding_window=window,
            sliding_window_layers=window_layers,
            num_experts=num_experts,
            experts_per_token=int(text.get("num_experts_per_tok") or text.get("moe_topk") or 0)
            + int(text.get("n_shared_experts") or 0),
            moe_intermediate_size=text.get("moe_intermediate_size") or None,
        )

    @classmethod
    def from_local_dir(cls, path: str | Path) -> ModelMeta:
        """A local model directory: config.json plus safetensors headers, the index, or file sizes."""
        folder = Path(path).expanduser()
        config = _read_json(folder / "config.json", what="config.json")
        files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        shards = _weight_files(files, ".safetensors")
        index_path = folder / "model.safetensors.index.json"
        index = _read_json(index_path, what=index_path.name) if index_path.is_file() else None
        if shards and not _index_incomplete(index, shards):
            counts: dict[str, int] = {}
            for name in shards:
                for dtype, n in read_safetensors_parameters(folder / name).items():
                    counts[dtype] = counts.get(dtype, 0) + n
            return cls.from_config(config, source=str(folder), parameters_by_dtype=counts)
        if index is not None:
            total = (index.get("metadata") or {}).get("total_size")
            if not isinstance(total, int) or total <= 0:
                raise UsageError(
                    f"{index_path} has no metadata.total_size",
                    hint="download the model's *.safetensors files, or a complete index",
                )
            return cls.from_config(config, source=str(folder), weights_bytes=total)
        return cls.from_config(config, source=str(folder), file_sizes=files)


def derive_max_model_len(text_config: Mapping[str, Any]) -> int:
    """The context limit vLLM derives from a (text) config, RoPE scaling included."""
    lengths = [
        v
        for k in _MAX_LEN_KEYS
        if isinstance(v := text_config.get(k), (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
    ]
    derived = float(min(lengths)) if lengths else float(_DEFAULT_MAX_LEN)
    rope = text_config.get("rope_scaling") or text_config.get("rope_parameters")
    model_type = str(text_config.get("model_type") or "")
    if isinstance(rope, Mapping) and "gemma3" not in model_type:
        rope_type = rope.get("rope_type") or rope.get("type")
        if rope_type not in _ROPE_NOT_SCALED:
            factor = rope.get("factor", 1.0)
            factor = float(factor) if isinstance(factor, (int, float)) else 1.0
            if rope_type == "yarn" and isinstance(rope.get("original_max_position_embeddings"), int):
                derived = float(rope["original_max_position_embeddings"])
            derived *= factor
    return int(derived)


def read_safetensors_parameters(path: str | Path) -> dict[str, int]:
    """Parameter counts by dtype from one safetensors file's header (the weights are not read).

    The format: 8 bytes little-endian header length N, then N bytes of JSON mapping tensor names
    to {dtype, shape, data_offsets} (plus an optional "__metadata__").
    """
    path = Path(path)
    hint = "the file is damaged or not a safetensors file; download it again"
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise UsageError(f"{path.name}: too short for a safetensors header", hint=hint)
            (length,) = struct.unpack("<Q", raw)
            if length <= 1 or length > _SAFETENSORS_MAX_HEADER:
                raise UsageError(f"{path.name}: implausible safetensors header length {length}", hint=hint)
            header_bytes = fh.read(length)
    except OSError as exc:
        raise ModelwizError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(header_bytes) != length:
        raise UsageError(f"{path.name}: safetensors header is cut short", hint=hint)
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"{path.name}: safetensors header is not valid JSON", hint=hint) from None
    if not isinstance(header, dict):
        raise UsageError(f"{path.name}: safetensors header is not a JSON object", hint=hint)
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(info["dtype"]).upper()
            n = math.prod(int(d) for d in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path.name}: tensor {name!r} has no dtype/shape", hint=hint) from None
        counts[dtype] = counts.get(dtype, 0) + n
    return counts


def load_model_meta(ref: str) -> ModelMeta:
    """A local directory, or a Hugging Face repo id (config and safetensors metadata, no weights)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return ModelMeta.from_local_dir(path)
    if path.exists() or ref.startswith((".", "/", "~")) or not _HUB_ID.match(ref):
        raise UsageError(
            f"{ref!r} is neither a model directory nor a Hugging Face repo id",
            hint="give a folder holding config.json, or an id like meta-llama/Llama-3.1-8B-Instruct",
        )
    from wizard.hub import lookup_model

    return meta_from_hub(ref, lookup_model(ref))


def meta_from_hub(ref: str, found: HubModel) -> ModelMeta:
    """The metadata of `ref` as looked up on the Hub (`hub.lookup_model`): no further request."""
    if not found.config:
        raise ModelwizError(
            f"{ref} has no config.json on the Hub",
            hint="vLLM needs a Transformers-style model; pick a repository that has config.json",
        )
    return ModelMeta.from_config(
        found.config,
        source=ref,
        parameters_by_dtype=found.parameters_by_dtype,
        file_sizes=found.files,
    )


# ---- helpers ------------------------------------------------------------------------------


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    for key in ("text_config", "llm_config", "language_config"):
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            return sub
    return config


def _nonsense(source: str, key: str, value: Any, why: str) -> UsageError:
    return UsageError(
        f"{source}: config.json has {key} = {value!r}; {why}",
        hint="fix that value in config.json (compare with the model's original config)",
    )


def _first_key(config: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return next((k for k in keys if k in config), keys[0])


# Beyond these no real transformer goes (the largest today: hidden 25600, 160 layers, 128 heads,
# contexts of ~10M tokens); a config beyond them is damaged, and planning it would only blame
# the weights.
_PLAUSIBLE_MAX = {
    "hidden_size": 1 << 18,
    "num_hidden_layers": 1 << 12,
    "num_attention_heads": 1 << 14,
    "intermediate_size": 1 << 22,
    "vocab_size": 1 << 24,
}


def _check_plausible(text: Mapping[str, Any], source: str) -> None:
    """Refuse values no real model has, naming the field (exit 2)."""
    for key, limit in _PLAUSIBLE_MAX.items():
        value = text.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 < value <= limit:
            raise _nonsense(source, key, value, f"it must be between 1 and {limit}")
    for key in _MAX_LEN_KEYS:
        value = text.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not math.isfinite(value) or (key == "max_position_embeddings" and value <= 0):
            raise _nonsense(source, key, value, "the context length must be a positive number")


def _positive_int(config: Mapping[str, Any], keys: tuple[str, ...], source: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if value is not None:
            raise _nonsense(source, key, value, "it must be a positive whole number")
    raise UsageError(
        f"{source}: config.json has no {keys[0]}",
        hint="this does not look like a transformer language model vLLM can serve",
    )


def _dtype_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.lower().removeprefix("torch.")
    return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(
        text, text
    )


def _sliding_window(text: Mapping[str, Any], model_type: str, layers: int) -> tuple[int | None, int]:
    """(window, number of sliding-window layers) as vLLM's hybrid KV manager sees them."""
    window = text.get("sliding_window")
    if text.get("use_sliding_window") is False or not isinstance(window, int) or window <= 0:
        return None, 0
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        count = sum(1 for t in layer_types if isinstance(t, str) and "sliding" in t)
        return (window, count) if count else (None, 0)
    pattern = text.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:  # Gemma 3: every pattern-th layer is global
        return window, layers - layers // pattern
    if model_type == "gemma2":  # alternating local/global
        return window, (layers + 1) // 2
    if window >= int(text.get("max_position_embeddings") or 0) > 0:
        return None, 0  # a window as long as the context changes nothing
    return window, layers


def _weight_files(files: Mapping[str, int], suffix: str) -> list[str]:
    """Top-level checkpoint files of one kind, without the duplicate consolidated copy.

    Mistral repositories ship `consolidated.safetensors` beside the Transformers shards; files in
    sub-folders (`original/`) are other formats of the same weights.
    """
    names = [n for n in files if "/" not in n and n.endswith(suffix)]
    main = [n for n in names if not n.startswith("consolidated")]
    return sorted(main or names)


def _index_incomplete(index: Mapping[str, Any] | None, shards: list[str]) -> bool:
    if not index or not isinstance(index.get("weight_map"), Mapping):
        return False
    return not set(index["weight_map"].values()) <= set(shards)


def _weights_bytes(
    source: str,
    parameters_by_dtype: Mapping[str, int] | None,
    weights_bytes: int | None,
    file_sizes: Mapping[str, int] | None,
    *,
    halve_wide: bool,
) -> tuple[int, str]:
    if parameters_by_dtype:
        total = 0.0
        for dtype, count in parameters_by_dtype.items():
            key = str(dtype).upper()
            size = DTYPE_BYTES.get(key, 2)
            if key in _WIDE_FLOATS:
                size = 2  # dtype=auto loads floats wider than 16 bits in the compute dtype
            total += size * int(count)
        return int(total), "safetensors"
    divisor = 2 if halve_wide else 1
    if weights_bytes and weights_bytes > 0:
        return int(weights_bytes) // divisor, "index"
    if file_sizes:
        for suffix in (".safetensors", ".bin", ".pt", ".pth"):
            names = _weight_files(file_sizes, suffix)
            if names:
                return sum(int(file_sizes[n]) for n in names) // divisor, "files"
    raise UsageError(
        f"{source}: no weights found (no *.safetensors, model.safetensors.index.json or *.bin)",
        hint="point at a complete model folder or a repository with safetensors weights",
    )


def _read_json(path: Path, *, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{path.parent} has no {what}", hint="give the folder that holds the model's config.json"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc})", hint="download the file again") from None
    except RecursionError:
        raise UsageError(
            f"{path} is nested too deeply to be a model's {what}", hint="replace it with the model's real file"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a JSON object", hint="download the file again")
    return data
