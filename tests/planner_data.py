"""Test data for the planner: real models' config.json and parameter counts, safetensors writers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wizard.model_meta import ModelMeta

CONFIGS = Path(__file__).parent / "data" / "configs"
MODELS = (
    "Llama-2-7b-hf",
    "Llama-3.1-8B",
    "Llama-3.1-70B",
    "Mistral-7B-v0.1",
    "Mixtral-8x7B-v0.1",
    "Qwen2.5-0.5B",
    "DeepSeek-V2-Lite",
)


def config(name: str) -> dict:
    return json.loads((CONFIGS / name / "config.json").read_text())


def parameters(name: str) -> dict[str, int]:
    return json.loads((CONFIGS / name / "parameters.json").read_text())["parameters_by_dtype"]


def meta(name: str) -> ModelMeta:
    return ModelMeta.from_config(config(name), source=name, parameters_by_dtype=parameters(name))


_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I8": 1, "U8": 1}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]], *, with_data: bool = True) -> None:
    """A safetensors file as the format defines it: u64 LE header length, JSON header, data.

    `with_data=False` writes only the header (a checkpoint far too large for a test, whose
    metadata is all the planner reads).
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        size = n * _SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        if with_data:
            fh.write(b"\0" * offset)


def qwen_tensors() -> dict[str, tuple[str, list[int]]]:
    """Qwen2.5-0.5B's real tensor layout (tied embeddings, q/k/v biases): 494,032,768 parameters."""
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": ("BF16", [151936, 896])}
    for i in range(24):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = ("BF16", [896, 896])
        t[p + "self_attn.q_proj.bias"] = ("BF16", [896])
        t[p + "self_attn.k_proj.weight"] = ("BF16", [128, 896])
        t[p + "self_attn.k_proj.bias"] = ("BF16", [128])
        t[p + "self_attn.v_proj.weight"] = ("BF16", [128, 896])
        t[p + "self_attn.v_proj.bias"] = ("BF16", [128])
        t[p + "self_attn.o_proj.weight"] = ("BF16", [896, 896])
        t[p + "mlp.gate_proj.weight"] = ("BF16", [4864, 896])
        t[p + "mlp.up_proj.weight"] = ("BF16", [4864, 896])
        t[p + "mlp.down_proj.weight"] = ("BF16", [896, 4864])
        t[p + "input_layernorm.weight"] = ("BF16", [896])
        t[p + "post_attention_layernorm.weight"] = ("BF16", [896])
    t["model.norm.weight"] = ("BF16", [896])
    return t


def model_dir(root: Path, name: str, *, total_size: int | None = None) -> Path:
    """A local model folder with the real config.json and an index carrying metadata.total_size."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config(name)))
    if total_size is None:
        total_size = sum(2 * n for n in parameters(name).values())
    index = {
        "metadata": {"total_size": total_size},
        "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def write_real_model_folder(folder: Path, name: str) -> Path:
    """A local model folder with `name`'s real config.json, its index (metadata.total_size) and one
    shard whose safetensors header holds the real parameter counts but no data (the size is read
    from the header; a folder without any weight file is refused as a model)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text((CONFIGS / name / "config.json").read_text())
    counts = parameters(name)
    total = sum(count * _SIZES[dtype] for dtype, count in counts.items())
    shard = "model-00001-of-00001.safetensors"
    tensors = {f"weights.{dtype}": (dtype, [count]) for dtype, count in counts.items()}
    write_safetensors(folder / shard, tensors, with_data=False)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict.fromkeys(tensors, shard)})
    )
    return folder
