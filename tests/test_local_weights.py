"""A local model folder brought into the repository: only what vLLM reads, and only a real model."""

from __future__ import annotations

import os

import pytest

from tests.fixtures_repository import write_model_folder
from wizard.errors import UsageError
from wizard.local_weights import check_local_model, copy_local_model, local_size


def test_a_local_folder_links_only_what_vllm_reads(tmp_path):
    """Never a `.env` (a token), notes, links to other files or sub-folders: the repository is
    mounted into the container."""
    src = write_model_folder(tmp_path / "m")
    (src / ".env").write_text("HF_TOKEN=hf_secret_0000000000000000\n")
    (src / "notes.txt").write_text("mine")
    token = tmp_path / "token"
    token.write_text("hf_secret_0000000000000000")
    (src / "readme.md").symlink_to(token)
    (src / "sub").mkdir()
    (src / "sub" / "config.json").write_text("{}")
    (src / "tokenizer.json").write_text("{}")
    (src / "chat_template.jinja").write_text("{{ messages }}")
    dest = copy_local_model(check_local_model(str(src)), tmp_path / "repo" / "m" / "m")
    assert sorted(p.name for p in dest.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert not any("hf_secret" in p.read_text(errors="replace") for p in dest.iterdir())
    assert local_size(src) == sum(p.stat().st_size for p in dest.iterdir())


def test_a_local_folder_with_no_weight_files_is_refused(tmp_path):
    src = write_model_folder(tmp_path / "m")
    (src / "model.safetensors").unlink()
    (src / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(UsageError, match="has no weight files"):
        check_local_model(str(src))


def test_a_local_folder_missing_shards_its_index_names_is_refused(tmp_path):
    src = write_model_folder(tmp_path / "m")
    (src / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    )
    with pytest.raises(UsageError, match=r"lacks 1 weight file.*model-00002-of-00002\.safetensors"):
        check_local_model(str(src))


def test_a_symlink_loop_in_a_local_folder_is_harmless(tmp_path):
    src = write_model_folder(tmp_path / "m")
    os.symlink(src, src / "loop")
    os.symlink(src / "self", src / "self")  # a link to itself (ELOOP when followed)
    dest = copy_local_model(check_local_model(str(src)), tmp_path / "r" / "m")
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]
