"""Pytest fixtures for the Hub area: a fake Hub on 127.0.0.1 with a few model repos.

`fake_hub` points the real huggingface_hub at the fake in this process (constants are read at
import time, so they are monkeypatched); `hub_env` is the environment a subprocess needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import types
from pathlib import Path

import pytest

from tests.fakehub import FakeHub, FakeRepo, safetensors_bytes
from wizard.download_records import PARTIAL_DIR

GOOD_TOKEN = "hf_test_alice_token_000000000000"
OTHER_TOKEN = "hf_test_bob_token_00000000000000"


def llama_config(**extra) -> bytes:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 256,
        "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16",
    }
    cfg.update(extra)
    return json.dumps(cfg).encode()


def tiny_model_files(shard_sizes=(300_000, 200_000), *, config: bytes | None = None) -> dict[str, bytes]:
    """An HF-format model: config, tokenizer, sharded safetensors (+ things vLLM does not need)."""
    files: dict[str, bytes] = {
        "config.json": config or llama_config(),
        "generation_config.json": b'{"bos_token_id": 1, "eos_token_id": 2}',
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}',
        "tokenizer_config.json": b'{"model_max_length": 2048}',
        "special_tokens_map.json": b"{}",
        "README.md": b"# tiny\n",
        "pytorch_model.bin": os.urandom(1000),
        "original/consolidated.00.pth": os.urandom(1000),
    }
    weight_map = {}
    for i, size in enumerate(shard_sizes, 1):
        name = f"model-{i:05d}-of-{len(shard_sizes):05d}.safetensors"
        n = max(1, size // 2)
        files[name] = safetensors_bytes({f"layer{i}.weight": ("BF16", [n])}, fill=os.urandom(4096))
        weight_map[f"layer{i}.weight"] = name
    files["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": sum(shard_sizes)}, "weight_map": weight_map}
    ).encode()
    return files


def standard_repos() -> list[FakeRepo]:
    files = tiny_model_files()
    return [
        FakeRepo(
            "org/tiny",
            files,
            info={
                "downloads": 500,
                "likes": 7,
                "tags": ["text-generation", "license:apache-2.0"],
                "cardData": {"license": "apache-2.0"},
                "safetensors": {"parameters": {"BF16": 250_000}, "total": 250_000},
            },
        ),
        FakeRepo(
            "org/tiny-gated",
            tiny_model_files((1000,)),
            gated="manual",
            allowed_tokens={GOOD_TOKEN},
            info={"downloads": 50, "tags": ["text-generation"]},
        ),
        FakeRepo("org/tiny-chat", tiny_model_files((1000,)), info={"downloads": 9000, "tags": ["text-generation"]}),
        FakeRepo(
            "org/bert-tiny",
            {
                "config.json": json.dumps({"architectures": ["BertModel"]}).encode(),
                "model.safetensors": safetensors_bytes({"w": ("F32", [8])}),
            },
            info={"downloads": 100000, "pipeline_tag": "fill-mask", "tags": ["fill-mask"]},
        ),
        FakeRepo(
            "org/odd-arch",
            {
                "config.json": llama_config(architectures=["FancyNewForCausalLM"]),
                "model.safetensors": safetensors_bytes({"w": ("F16", [16]), "b": ("F32", [4])}),
            },
            info={"downloads": 3, "tags": ["text-generation"]},
        ),
    ]


def point_hf_at(monkeypatch, endpoint: str, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-stored-tokens"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub's module-level helpers (login() uses hf_api.whoami) are bound to an HfApi made
    # at import time, with the endpoint of whichever test imported it first.
    from huggingface_hub import hf_api

    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A running FakeHub with `standard_repos()`; huggingface_hub in this process talks to it."""
    with FakeHub(standard_repos(), users={GOOD_TOKEN: "alice", OTHER_TOKEN: "bob"}) as hub:
        point_hf_at(monkeypatch, hub.endpoint, tmp_path)
        yield hub


@pytest.fixture
def hub_env(fake_hub, tmp_path):
    """Environment for a subprocess (`python -m wizard ...`) that must talk to `fake_hub`."""
    env = dict(os.environ)
    env.update(
        {
            "HF_ENDPOINT": fake_hub.endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
            "HF_TOKEN_PATH": str(tmp_path / "hf-token"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "PYTHONPATH": os.getcwd(),
        }
    )
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    return env


@pytest.fixture
def small_chunks(monkeypatch):
    """4 KiB download chunks (default 10 MiB), so progress, cancel and Range resume show on small files;
    and no 1 s sleeps between huggingface_hub's retries."""
    from huggingface_hub import constants, file_download

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    fast_time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fast_time.sleep = lambda s: None
    monkeypatch.setattr(file_download, "time", fast_time)


def assert_identical(dest: Path, repo: FakeRepo, files) -> None:
    """Each of `files` in `dest` has the bytes the fake Hub serves."""
    for name in files:
        assert hashlib.sha256((dest / name).read_bytes()).digest() == hashlib.sha256(repo.files[name]).digest(), name


def partial_of(dest: Path, repo: FakeRepo, path: str) -> Path:
    """Where a cut download of `path` keeps its bytes: named by the path and the content's sha256."""
    return dest / PARTIAL_DIR / f"{path}.{repo.etag(path)}.part"
