import os
from collections import defaultdict
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.fixtures_repository import FakeDownloader, FakeReader, fake_plan_models
from wizard import fsutil
from wizard.add_flow import AddRequest, execute_add, prepare_add
from wizard.errors import ModelwizError, UsageError
from wizard.gpus import describe
from wizard.manifest import load_manifest
from wizard.model_config import validate_model_json, vllm_problems
from wizard.plan_types import container_gpu_ids
from wizard.planner import MAX_UTILIZATION_PER_GPU
from wizard.repository import BROKEN, DOWNLOADING, FOREIGN, READY, Repository

INV = describe("2xH100-80GB")


def add(root, *sources, downloader=None, inventory=INV, **kw):
    repo = Repository.open(root, create=True)
    proposal = prepare_add(
        repo,
        [AddRequest(s) if isinstance(s, str) else s for s in sources],
        inventory=inventory,
        image_ref=kw.pop("image_ref", "26.07-vllm-python-py3"),
        planner=fake_plan_models,
        reader=FakeReader(),
        **kw,
    )
    return proposal, execute_add(repo, proposal, downloader=downloader or FakeDownloader())


def check_consistent(root: Path):
    """Every modelwiz model's files parse, match the recorded hashes, and the budgets add up."""
    repo = Repository.open(root)
    devices = repo.used_devices()
    per_gpu = defaultdict(float)
    for entry in repo.manifest.models:
        for d in entry.plan.devices:
            per_gpu[d] += entry.plan.gpu_memory_utilization
        if not entry.complete:
            continue
        folder = root / entry.name
        config = model_config_pb2.ModelConfig()
        text_format.Parse((folder / "config.pbtxt").read_text(), config)
        assert (
            vllm_problems(
                config, tensor_parallel_size=entry.plan.tensor_parallel_size, container_gpu_count=len(devices)
            )
            == []
        )
        if entry.plan.instance_group.kind == "KIND_GPU":
            assert list(config.instance_group[0].gpus) == [container_gpu_ids(devices, d) for d in entry.plan.devices]
        data = validate_model_json((folder / "1/model.json").read_text(), "0.24.0")
        assert data["model"] == f"{repo.manifest.mount_point}/{entry.name}/{entry.weights}"
        assert data["gpu_memory_utilization"] == entry.plan.gpu_memory_utilization
        for rel in ("config.pbtxt", "1/model.json"):
            assert repo.file_status(entry, rel) == "ok"
    assert all(total <= MAX_UTILIZATION_PER_GPU + 1e-9 for total in per_gpu.values()), per_gpu
    return repo


def test_repository_grows_model_by_model_with_a_joint_budget(tmp_path):
    root = tmp_path / "repo"
    names = []
    sources = (
        "meta-llama/Llama-2-7b-hf",
        "mistralai/Mistral-7B-v0.1",
        "Qwen/Qwen2-7B",
        "google/gemma-7b",
        "org/five-7b",
        "org/six-7b",
    )
    for source in sources:
        _, result = add(root, source)
        names += result.names
        repo = check_consistent(root)
        assert [m.name for m in repo.models() if m.ready] == sorted(names)
    assert names == ["llama-2-7b-hf", "mistral-7b-v0.1", "qwen2-7b", "gemma-7b", "five-7b", "six-7b"]
    assert repo.used_devices() == ("0", "1")
    # A seventh 7B model has no room left at the current budgets: refused with the planner's reason.
    with pytest.raises(ModelwizError, match="no GPU has that much left"):
        add(root, "org/another-7b")
    assert load_manifest(root).names == tuple(names)


def test_existing_models_get_new_container_ids_when_the_device_set_grows(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"))
    assert Repository.open(root).used_devices() == ("0",)
    proposal, _result = add(root, "org/a-70b", inventory=describe("4xH100-80GB"))
    assert proposal.warnings == ()
    repo = check_consistent(root)
    assert repo.used_devices() == ("0", "1", "2", "3")
    config = (root / "a-70b/config.pbtxt").read_text()
    assert "KIND_MODEL" in config


def test_names_are_unique_and_user_names_are_checked(tmp_path):
    root = tmp_path / "repo"
    (root / "llama-2-7b-hf").mkdir(parents=True)  # a folder someone else made
    (root / "llama-2-7b-hf" / "config.pbtxt").write_text('backend: "vllm"')
    _, result = add(root, "meta-llama/Llama-2-7b-hf")
    assert result.names == ("llama-2-7b-hf-2",)
    with pytest.raises(UsageError, match="already in the repository"):
        add(root, "meta-llama/Llama-2-7b-hf")
    with pytest.raises(UsageError, match="already has a model named"):
        add(root, AddRequest("org/x", name="llama-2-7b-hf"))
    for bad in ("..", "../x", "/abs", "a/b", "Upper", "", "1"):
        with pytest.raises(UsageError):
            add(root, AddRequest("org/x", name=bad))
    for bad in ("org/../x", "a b", "org/x/y/z"):
        with pytest.raises(UsageError):
            add(root, bad)


def test_hand_edited_files_are_kept_and_the_new_version_goes_beside(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"))
    config = root / "first-7b/config.pbtxt"
    edited = config.read_text().replace('key: "REPORT_CUSTOM_METRICS"', 'key: "MY_SETTING"')
    config.write_text(edited)
    repo = Repository.open(root)
    assert repo.model("first-7b").edited == ("config.pbtxt",)
    # The device set grows, so modelwiz wants to rewrite first-7b's files.
    _, result = add(root, "org/a-70b", inventory=describe("4xH100-80GB"))
    assert config.read_text() == edited
    beside = root / "first-7b/config.pbtxt.modelwiz-new"
    assert beside.exists()
    text_format.Parse(beside.read_text(), model_config_pb2.ModelConfig())
    report = next(r for r in result.reports if r.name == "first-7b")
    assert report.kept == ("config.pbtxt",)
    assert any("edited by hand" in n for n in result.notes)
    listed = Repository.open(root).model("first-7b")
    assert listed.edited == ("config.pbtxt",) and listed.waiting == ("config.pbtxt.modelwiz-new",)
    # The user takes modelwiz's version: it is modelwiz's own again, and the suggestion is gone.
    os.replace(beside, config)
    assert Repository.open(root).model("first-7b").edited == ()


def write_foreign(root: Path) -> dict[Path, bytes]:
    """A repository as triton_cli writes it (`triton import -m gpt2 --backend vllm`)."""
    (root / "gpt2/1").mkdir(parents=True)
    (root / "gpt2/config.pbtxt").write_text('backend: "vllm"\ninstance_group [{kind: KIND_MODEL}]\n')
    (root / "gpt2/1/model.json").write_text('{"model": "gpt2", "gpu_memory_utilization": 0.85}')
    (root / "broken").mkdir()
    (root / "broken/config.pbtxt").write_text("backend: vllm-oops {")
    (root / "notes").mkdir()
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_foreign_repository_is_read_without_damage(tmp_path):
    root = tmp_path / "repo"
    before = write_foreign(root)
    repo = Repository.open(root)
    models = {m.name: m for m in repo.models()}
    assert models["gpt2"].state == FOREIGN and not models["gpt2"].managed
    assert models["gpt2"].config_summary == "vllm, KIND_MODEL x1"
    assert models["broken"].state == BROKEN and "does not parse" in models["broken"].problems[0]
    assert models["notes"].state == BROKEN
    add(root, "org/new-7b")
    assert {p: p.read_bytes() for p in before} == before
    with pytest.raises(ModelwizError, match="not set up by modelwiz"):
        Repository.open(root).remove_model("gpt2", delete_weights=True)
    assert {p: p.read_bytes() for p in before} == before


def test_incomplete_download_is_never_ready_and_is_resumed(tmp_path):
    root = tmp_path / "repo"
    with pytest.raises(ModelwizError, match="503"):
        add(root, "org/first-7b", downloader=FakeDownloader(fail_after=0))
    repo = Repository.open(root)
    model = repo.model("first-7b")
    assert model.state == DOWNLOADING and not model.ready
    assert not (root / "first-7b/config.pbtxt").exists()  # Triton sees no model yet
    downloader = FakeDownloader()
    proposal, result = add(root, "org/first-7b", downloader=downloader)
    assert proposal.new[0].resume and result.names == ("first-7b",)
    assert Repository.open(root).model("first-7b").ready
    assert load_manifest(root).get("first-7b").revision == downloader.sha


def test_weights_gone_means_not_ready(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b")
    import shutil

    shutil.rmtree(root / "first-7b/FIRST-7b".replace("FIRST-7b", "first-7b"))
    model = Repository.open(root).model("first-7b")
    assert model.state == DOWNLOADING and "incomplete" in model.problems[0]


def test_remove_keeps_edited_files_and_asks_about_weights(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/one-7b", "org/two-7b")
    (root / "one-7b/1/model.json").write_text('{"model": "mine"}')
    repo = Repository.open(root)
    notes = repo.remove_model("one-7b", delete_weights=False)
    assert (root / "one-7b/1/model.json.modelwiz-removed").read_text() == '{"model": "mine"}'
    assert not (root / "one-7b/config.pbtxt").exists()
    assert (root / "one-7b/one-7b/config.json").exists()
    assert any("weights kept" in n for n in notes)
    repo.remove_model("two-7b", delete_weights=True)
    assert not (root / "two-7b").exists()
    assert load_manifest(root).names == ()


@pytest.mark.parametrize("fail_at", range(1, 12))
def test_crash_between_writes_leaves_old_or_new_files(tmp_path, monkeypatch, fail_at):
    """os.replace fails at its Nth call during an add that rewrites an existing model."""
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"))
    old = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "first-7b/first-7b" not in str(p)}
    calls = {"n": 0}
    real_replace = os.replace

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", flaky)
    try:
        add(root, "org/a-70b", inventory=describe("4xH100-80GB"))
        crashed = False
    except (OSError, ModelwizError):
        crashed = True
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    assert crashed == (fail_at <= calls["n"])
    assert not [p for p in root.rglob("*") if fsutil.is_temp_file(p.name)]
    repo = Repository.open(root)  # the manifest always loads
    for path, _data in old.items():
        if path.name in ("config.pbtxt", "model.json"):
            entry = repo.manifest.get("first-7b")
            assert repo.file_status(entry, path.relative_to(root / "first-7b").as_posix()) == "ok"
    assert all(m.state in (READY, DOWNLOADING) for m in repo.models())
    # Running the same command again finishes the job.
    if crashed:
        add(root, "org/a-70b", inventory=describe("4xH100-80GB"))
    repo = check_consistent(root)
    assert [m.name for m in repo.models() if m.ready] == ["a-70b", "first-7b"]


def test_rewriting_an_unchanged_repository_writes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    add(root, "org/one-7b", "org/two-7b")
    repo = Repository.open(root)
    writes = []
    monkeypatch.setattr(fsutil.os, "replace", lambda s, d: writes.append(d))
    reports = repo.write_models(list(repo.manifest.models), vllm_version="0.24.0")
    assert writes == []
    assert all(r.written == () and len(r.unchanged) == 2 for r in reports)


def test_removing_a_model_renumbers_the_others_gpus(tmp_path):
    # config.pbtxt GPU ids are positions in the set the container mounts; when a model leaves,
    # the others are renumbered (a model on host GPU 1 becomes container GPU 0).
    from wizard.model_config import parse_config_pbtxt

    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("2xH100-80GB"))
    add(root, "org/second-7b", inventory=describe("2xH100-80GB"))
    repo = Repository.open(root)
    plans = {m.name: m.plan for m in repo.manifest.models}
    (name,) = [n for n, p in plans.items() if p.devices == ("1",)]
    other = next(n for n in plans if n != name)
    assert list(parse_config_pbtxt((root / name / "config.pbtxt").read_text()).instance_group[0].gpus) == [1]
    notes = repo.remove_model(other, delete_weights=True)
    assert list(parse_config_pbtxt((root / name / "config.pbtxt").read_text()).instance_group[0].gpus) == [0]
    assert any("GPU numbering updated" in n for n in notes)
    assert Repository.open(root).used_devices() == ("1",)


def test_one_change_at_a_time(tmp_path):
    root = tmp_path / "repo"
    first, second = Repository.open(root, create=True), Repository.open(root, create=True)
    with first.lock():
        with pytest.raises(ModelwizError, match="another modelwiz is changing"):
            with second.lock():
                pass
    with second.lock():  # released
        pass
    assert not root.exists()  # locking writes nothing into the repository


def test_an_add_that_stops_mid_download_leaves_the_gpu_numbering_right(tmp_path):
    # The new model is in the manifest before its download, so `up` mounts the new device set
    # from then on: the models already there must be numbered against it before the download.
    from tests.fixtures_repository import FakeDownloader
    from wizard.launch_inputs import read_launch_inputs
    from wizard.model_config import parse_config_pbtxt
    from wizard.plan_types import container_gpu_ids

    root = tmp_path / "repo"
    inv = describe("2xH100-80GB")
    add(root, "org/a-7b", inventory=inv)
    add(root, "org/b-7b", inventory=inv)
    repo = Repository.open(root)
    on_one = next(m.name for m in repo.manifest.models if m.plan.devices == ("1",))
    repo.remove_model(next(m.name for m in repo.manifest.models if m.name != on_one), delete_weights=True)
    with pytest.raises(ModelwizError, match="503"):
        add(root, "org/c-7b", inventory=inv, downloader=FakeDownloader(fail_after=0))
    inputs = read_launch_inputs(root)
    assert on_one in inputs.models and "c-7b" not in inputs.models
    config = parse_config_pbtxt((root / on_one / "config.pbtxt").read_text())
    assert list(config.instance_group[0].gpus) == [container_gpu_ids(inputs.devices, "1")]


def test_finishing_an_interrupted_add_with_a_new_model_lists_it_once(tmp_path):
    from tests.fixtures_repository import FakeDownloader

    root = tmp_path / "repo"
    add(root, "org/a-7b")
    with pytest.raises(ModelwizError):
        add(root, "org/b-7b", downloader=FakeDownloader(fail_after=0))
    proposal, _ = add(root, "org/b-7b", "org/c-7b")
    names = [p.name for p in proposal.plans]
    assert sorted(names) == ["a-7b", "b-7b", "c-7b"]
    assert [n.plan.name for n in proposal.new] == ["b-7b", "c-7b"] and [n.resume for n in proposal.new] == [True, False]
    check_consistent(root)


# -- one writer at a time, whoever runs it ----------------------------------------------------------
def test_the_lock_lives_in_the_repository_and_holds_across_caches(tmp_path, monkeypatch):
    """`sudo modelwiz add` beside `modelwiz add` (different users, HOMEs, caches) take one lock."""
    import subprocess
    import sys

    root = tmp_path / "repo"
    add(root, "org/one-7b")
    lock = root / ".modelwiz.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDONLY | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path / "other-home"), "XDG_CACHE_HOME": str(tmp_path / "other-cache")},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "my-cache"))
        with pytest.raises(ModelwizError, match="another modelwiz is changing"):
            with Repository.open(root).lock():
                pass
    finally:
        holder.stdin.close()
        holder.wait(10)
    with Repository.open(root).lock():
        assert lock.exists()


def test_two_writers_lose_no_manifest_update(tmp_path):
    """Both processes opened the repository before either wrote: the second one's change is made
    on the manifest as the first one left it (re-read under the lock), so nothing falls out."""
    from dataclasses import replace

    root = tmp_path / "repo"
    add(root, "org/one-7b", "org/two-7b")
    first, second = Repository.open(root), Repository.open(root)
    with first.lock():
        first.record(replace(first.manifest.get("one-7b"), revision="a" * 40))
    with second.lock():
        assert second.manifest.get("one-7b").revision == "a" * 40
        second.record(replace(second.manifest.get("two-7b"), revision="b" * 40))
    manifest = load_manifest(root)
    assert [m.revision for m in manifest.models] == ["a" * 40, "b" * 40]


# -- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["modelwiz.toml", "notes.txt"])
def test_a_name_that_is_a_file_in_the_repository_is_refused(tmp_path, name):
    root = tmp_path / "repo"
    add(root, "org/one-7b")
    (root / "notes.txt").write_text("mine")
    before = (root / "modelwiz.toml").read_text()
    with pytest.raises(UsageError, match="already has a model named"):
        add(root, AddRequest("org/two-7b", name=name))
    assert (root / "modelwiz.toml").read_text() == before  # no phantom entry
    assert (root / "notes.txt").read_text() == "mine"
    add(root, "org/two-7b")  # a plain add afterwards works
    assert "two-7b" in load_manifest(root).names


@pytest.mark.parametrize("name", ["beta\n", "beta\r", "\nbeta", "be\nta", "beta "])
def test_a_name_with_a_line_break_or_space_is_refused(tmp_path, name):
    from wizard.naming import check_name

    with pytest.raises(UsageError, match="not a usable model name"):
        check_name(name)


# -- removing a symlinked weights folder -------------------------------------------------------------
def test_remove_of_a_symlinked_weights_folder_removes_the_link_not_the_files(tmp_path):
    import shutil

    root = tmp_path / "repo"
    add(root, "org/one-7b", "org/two-7b")
    entry = Repository.open(root).manifest.get("one-7b")
    weights = root / "one-7b" / entry.weights
    outside = tmp_path / "bigdisk" / "one-7b"
    outside.parent.mkdir()
    shutil.move(weights, outside)
    weights.symlink_to(outside)
    assert Repository.open(root).model("one-7b").ready
    notes = Repository.open(root).remove_model("one-7b", delete_weights=True)
    assert not weights.is_symlink() and not (root / "one-7b").exists()
    assert (outside / "config.json").is_file()  # what the link pointed to is untouched
    assert any("removed the link" in n and str(outside) in n for n in notes)
    assert load_manifest(root).names == ("two-7b",)
    check_consistent(root)


# -- crash injection around every replace, rename, unlink and rmdir ----------------------------------
class Crash(Exception):
    """Stands for a kill at that point: nothing after it runs."""


def _count_mutations(monkeypatch, root, fail_at, *, after):
    """Make the fail_at-th replace/rename/unlink/rmdir/rmtree under `root` raise Crash, before or
    after it happens. Returns the call counter."""
    import shutil

    calls = {"n": 0}

    def wrap(module, name):
        real = getattr(module, name)

        def flaky(*args, **kwargs):
            if not any(str(a).startswith(str(root)) for a in args[:2]):
                return real(*args, **kwargs)
            calls["n"] += 1
            mine = calls["n"]
            if mine == fail_at and not after:
                raise Crash(name)
            result = real(*args, **kwargs)
            if mine == fail_at and after:
                raise Crash(name)
            return result

        monkeypatch.setattr(module, name, flaky)

    for name in ("replace", "rename", "unlink", "rmdir"):
        wrap(os, name)
    wrap(shutil, "rmtree")
    return calls


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("fail_at", range(1, 16))
def test_a_crash_at_any_step_of_remove_loses_nothing_and_a_rerun_finishes(tmp_path, monkeypatch, fail_at, after):
    root = tmp_path / "repo"
    add(root, "org/one-7b", "org/two-7b")
    with monkeypatch.context() as patch:
        calls = _count_mutations(patch, root, fail_at, after=after)
        try:
            Repository.open(root).remove_model("one-7b", delete_weights=True)
            crashed = False
        except Crash:
            crashed = True
    assert crashed == (fail_at <= calls["n"])
    repo = Repository.open(root)  # the manifest always loads
    two = repo.model("two-7b")
    assert two is not None and two.ready
    one = repo.model("one-7b")
    if one is not None and one.ready:  # never listed ready without its files and whole weights
        assert (one.path / "config.pbtxt").is_file() and (repo.weights_dir(one.entry) / "model.safetensors").is_file()
    if repo.manifest.get("one-7b") is not None:
        repo.remove_model("one-7b", delete_weights=True)
    assert load_manifest(root).names == ("two-7b",) and not (root / "one-7b").exists()
    check_consistent(root)


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("fail_at", range(1, 14))
def test_a_crash_at_any_step_of_add_loses_nothing_and_a_rerun_finishes(tmp_path, monkeypatch, fail_at, after):
    root = tmp_path / "repo"
    add(root, "org/one-7b")
    with monkeypatch.context() as patch:
        calls = _count_mutations(patch, root, fail_at, after=after)
        try:
            add(root, "org/two-7b")
            crashed = False
        except Crash:
            crashed = True
    assert crashed == (fail_at <= calls["n"])
    repo = Repository.open(root)
    assert repo.model("one-7b").ready
    two = repo.model("two-7b")
    if two is not None and two.ready:  # never listed ready without its files and whole weights
        assert (two.path / "config.pbtxt").is_file() and (repo.weights_dir(two.entry) / "model.safetensors").is_file()
    if not (two is not None and two.entry is not None and two.entry.complete):
        add(root, "org/two-7b")  # the same command again finishes the job
    repo = check_consistent(root)
    assert sorted(m.name for m in repo.models() if m.ready) == ["one-7b", "two-7b"]


def test_a_model_whose_model_json_is_not_json_is_not_ready(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/one-7b")
    (root / "one-7b/1/model.json").write_text('{"model": "/x", ')
    model = Repository.open(root).model("one-7b")
    assert model.state == BROKEN and not model.ready
    assert any("model.json is not readable JSON" in p for p in model.problems)


def test_a_deeply_nested_user_config_is_one_line(tmp_path, monkeypatch):
    from wizard.paths import config_file
    from wizard.repository import configured_repository

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("MODEL_REPOSITORY", raising=False)
    config_file().parent.mkdir(parents=True)
    config_file().write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ModelwizError, match="nested too deeply"):
        configured_repository()
