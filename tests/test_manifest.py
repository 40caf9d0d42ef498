from dataclasses import replace

import pytest

from tests.fixtures_repository import make_plan
from wizard.manifest import (
    DEFAULT_MOUNT_POINT,
    Manifest,
    ManifestError,
    ManifestModel,
    load_manifest,
    manifest_path,
    save_manifest,
)

SHA = "ab" * 32


def entry(name, **kw):
    plan = make_plan(name, dtype=None)
    plan = replace(plan, kv_cache_dtype=None, extra={"note": "x", "n": 2})
    return ManifestModel(name=name, source=f"org/{name}", weights=name.upper(), plan=plan, **kw)


def test_round_trip_through_toml(tmp_path):
    manifest = (
        Manifest(image="nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3")
        .with_model(entry("a", state="complete", revision="c0ffee", files={"config.pbtxt": SHA, "1/model.json": SHA}))
        .with_model(entry("b"))
    )
    save_manifest(tmp_path, manifest)
    loaded = load_manifest(tmp_path)
    assert loaded == manifest
    assert loaded.mount_point == DEFAULT_MOUNT_POINT
    assert loaded.get("a").plan.extra == {"note": "x", "n": 2}
    assert loaded.get("b").plan.dtype is None
    assert not loaded.get("b").complete and loaded.get("a").complete


def test_missing_manifest_is_none(tmp_path):
    assert load_manifest(tmp_path) is None


def test_user_comments_and_keys_survive_updates(tmp_path):
    save_manifest(tmp_path, Manifest(image="img").with_model(entry("a")))
    path = manifest_path(tmp_path)
    text = path.read_text().replace("[models.a]", '# the model I care about\n[models.a]\nowner = "me"  # mine', 1)
    path.write_text("# top comment\n" + text)
    loaded = load_manifest(tmp_path)
    updated = loaded.with_model(replace(loaded.get("a"), state="complete")).with_model(entry("b"))
    save_manifest(tmp_path, updated)
    after = path.read_text()
    assert "# top comment" in after
    assert "# the model I care about" in after
    assert 'owner = "me"  # mine' in after
    assert load_manifest(tmp_path).get("a").complete
    save_manifest(tmp_path, load_manifest(tmp_path).without_model("b"))
    assert load_manifest(tmp_path).names == ("a",)
    assert "[models.b" not in path.read_text()


@pytest.mark.parametrize(
    "body,message",
    [
        ("version = [", "not valid TOML"),
        ("version = 99", "newer modelwiz"),
        ('mount_point = "relative"', "absolute"),
        ('[models."../evil"]\nsource = "x"\nweights = "w"\nplan = {}', "not a valid model name"),
        ('[models.a]\nsource = "x"\nweights = "../w"\nplan = {}', "not a plain folder"),
        ('[models.a]\nsource = "x"\nweights = "w"', "has no 'plan'"),
        ('[models.a]\nsource = "x"\nweights = "w"\nstate = "odd"\nplan = {}', "state 'odd'"),
        ('[models.a]\nsource = "x"\nweights = "w"\nplan = {}', "plan is incomplete"),
    ],
)
def test_bad_manifests_are_explained(tmp_path, body, message):
    manifest_path(tmp_path).write_text(body)
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_file_paths_that_escape_are_refused(tmp_path):
    save_manifest(tmp_path, Manifest().with_model(entry("a", files={"config.pbtxt": SHA})))
    path = manifest_path(tmp_path)
    path.write_text(path.read_text().replace('"config.pbtxt"', '"../../etc/passwd"'))
    with pytest.raises(ManifestError, match="would leave the model folder"):
        load_manifest(tmp_path)


# ---- hand-corrupted manifests: one line naming the entry, never a crash -------------------------


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("gpu_memory_utilization = 0.9", "gpu_memory_utilization = nan", "gpu_memory_utilization = nan"),
        ("gpu_memory_utilization = 0.9", "gpu_memory_utilization = inf", "gpu_memory_utilization = inf"),
        ('devices = ["0"]', 'devices = ["../../x"]', "'../../x', which is not a GPU index"),
    ],
)
def test_hand_corrupted_plan_values_are_named(tmp_path, old, new, said):
    plan = replace(make_plan("a", dtype=None), gpu_memory_utilization=0.9, devices=("0",))
    save_manifest(tmp_path, Manifest().with_model(ManifestModel("a", "org/a", "A", plan)))
    text = manifest_path(tmp_path).read_text()
    assert old in text, text
    manifest_path(tmp_path).write_text(text.replace(old, new))
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert said in info.value.one_line() and "model 'a'" in info.value.one_line()


def test_a_deeply_nested_manifest_is_refused_in_one_line(tmp_path):
    manifest_path(tmp_path).write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ManifestError, match="nested too deeply"):
        load_manifest(tmp_path)
