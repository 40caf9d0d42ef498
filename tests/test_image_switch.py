"""`up --image REF`: model.json follows the image's vLLM (engine and keys), hand edits are kept."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.test_repository import add, check_consistent
from wizard.gpus import describe
from wizard.image_switch import prepare_for_image, switch_image
from wizard.manifest import load_manifest
from wizard.model_config import ConfigError, validate_model_json
from wizard.repository import Repository

NEW, V0_ERA, OLD = "26.07-vllm-python-py3", "25.07-vllm-python-py3", "25.03-vllm-python-py3"


def _batched(root, name, *, length=32768, batch=2048):
    """Give a model the planner's batch limits (the fake planner leaves them out) and write its files."""
    repo = Repository.open(root)
    entry = repo.manifest.get(name)
    plan = replace(entry.plan, max_model_len=length, extra={"max_num_batched_tokens": batch, "max_num_seqs": 256})
    repo.record(replace(entry, plan=plan))
    repo = Repository.open(root)
    repo.write_models([repo.manifest.get(name)], vllm_version="0.24.0")


def _model_json(root, name):
    return json.loads((root / name / "1/model.json").read_text())


def test_switch_to_a_v0_image_rerenders_for_it_and_records_it(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref=NEW)
    _batched(root, "first-7b")
    assert "enable_chunked_prefill" not in _model_json(root, "first-7b")
    assert "REPORT_CUSTOM_METRICS" in (root / "first-7b/config.pbtxt").read_text()

    notes = switch_image(root, V0_ERA)
    data = _model_json(root, "first-7b")
    assert data["enable_chunked_prefill"] is True and data["disable_log_requests"] is True
    validate_model_json((root / "first-7b/1/model.json").read_text(), "0.9.0")
    assert "REPORT_CUSTOM_METRICS" not in (root / "first-7b/config.pbtxt").read_text()
    assert load_manifest(root).image.endswith(V0_ERA)
    assert any("25.07-vllm-python-py3 (vLLM 0.9.0, V0 engine)" in n and "first-7b rewritten" in n for n in notes)
    # Same image again: nothing to do. Back to a V1 image: V1's files again.
    assert switch_image(root, V0_ERA) == ()
    switch_image(root, NEW)
    assert "enable_chunked_prefill" not in _model_json(root, "first-7b")
    assert "disable_log_requests" not in _model_json(root, "first-7b")
    check_consistent(root)


def test_hand_edited_model_json_is_kept_but_must_load_on_the_new_vllm(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref=NEW)
    _batched(root, "first-7b")
    path = root / "first-7b/1/model.json"
    path.write_text(json.dumps({**_model_json(root, "first-7b"), "max_num_seqs": 8}))  # edited for V1
    with pytest.raises(
        ConfigError, match=r"edited by hand and would not load on 25\.07.*max_num_batched_tokens \(2048\)"
    ):
        switch_image(root, V0_ERA)
    assert load_manifest(root).image.endswith(NEW)  # nothing switched
    assert not (root / "first-7b/1/model.json.modelwiz-new").exists()
    # An edit that V0 accepts is kept, with modelwiz's version beside it.
    path.write_text(json.dumps({**_model_json(root, "first-7b"), "enable_chunked_prefill": True}))
    edited = path.read_text()
    notes = switch_image(root, V0_ERA)
    assert path.read_text() == edited
    beside = json.loads((root / "first-7b/1/model.json.modelwiz-new").read_text())
    assert beside["enable_chunked_prefill"] is True and beside["disable_log_requests"] is True
    assert any("edited by hand" in n for n in notes)


def test_a_key_the_new_vllm_lacks_in_a_hand_edit_is_refused(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref=NEW)
    path = root / "first-7b/1/model.json"
    path.write_text(json.dumps({**_model_json(root, "first-7b"), "kv_cache_memory_bytes": 1 << 30}))
    with pytest.raises(ConfigError, match="kv_cache_memory_bytes"):
        switch_image(root, V0_ERA)


def test_25_03_is_refused_for_replicas_with_the_reason(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", "org/second-7b", inventory=describe("2xH100-80GB"), image_ref=NEW)
    with pytest.raises(ConfigError, match=r"25\.03-vllm-python-py3's vLLM backend puts every KIND_GPU") as info:
        switch_image(root, OLD)
    assert "PR #85" in info.value.message and "25.04" in info.value.hint
    assert load_manifest(root).image.endswith(NEW)


def test_images_modelwiz_does_not_know_and_foreign_repositories_are_left_alone(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref=NEW)
    before = (root / "first-7b/1/model.json").read_text()
    assert switch_image(root, "localhost/tritonserver:test") == ()
    assert (root / "first-7b/1/model.json").read_text() == before
    (tmp_path / "foreign").mkdir()
    assert switch_image(tmp_path / "foreign", V0_ERA) == ()


def test_up_without_image_refuses_files_the_recorded_image_would_refuse(tmp_path):
    # A repository written for 25.07 by an older modelwiz (V1's model.json: no chunked prefill).
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref=V0_ERA)
    _batched(root, "first-7b")  # written with vllm_version 0.24.0, as before the V0 fix
    with pytest.raises(ConfigError, match=r"first-7b/1/model\.json: vLLM 0\.9\.0 runs the V0 engine") as info:
        prepare_for_image(root, None)
    assert "modelwiz up --image 25.07-vllm-python-py3" in info.value.hint
    # The fix it names: render them again for the same image.
    notes = prepare_for_image(root, V0_ERA)
    assert any("first-7b rewritten" in n for n in notes)
    assert prepare_for_image(root, None) == ()
    assert prepare_for_image(root, V0_ERA) == ()  # nothing left to do


def test_up_without_image_refuses_replicas_recorded_on_25_03(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", "org/second-7b", inventory=describe("2xH100-80GB"), image_ref=NEW)
    repo = Repository.open(root)
    repo.save(replace(repo.manifest, image="nvcr.io/nvidia/tritonserver:" + OLD))  # recorded by an older modelwiz
    with pytest.raises(ConfigError, match="would land on GPU 0") as info:
        prepare_for_image(root, None)
    assert "--image" in info.value.hint


def test_add_with_a_forced_25_03_refuses_a_model_on_the_second_gpu(tmp_path):
    with pytest.raises(ConfigError, match="'second-7b' planned on container GPU"):
        add(tmp_path / "repo", "org/first-7b", "org/second-7b", inventory=describe("2xH100-80GB"), image_ref=OLD)
    add(tmp_path / "one", "org/first-7b", inventory=describe("H100-80GB"), image_ref=OLD)
    assert load_manifest(tmp_path / "one").image.endswith(OLD)  # one engine on GPU 0 is what 25.03 can do
