"""wizard.download against the fake Hub: selection, disk check, progress, cancel, drop, resume."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import types
from pathlib import Path

import pytest

from tests.fakehub import FakeRepo
from tests.fixtures_hub import GOOD_TOKEN, OTHER_TOKEN, assert_identical, partial_of
from wizard import download as dl
from wizard import hub
from wizard.errors import Cancelled, ModelwizError, UsageError


def no_partials(dest: Path) -> bool:
    return not list(dest.rglob("*.incomplete"))


# -- selection ---------------------------------------------------------------------------------------
def test_select_prefers_safetensors_and_skips_the_rest():
    files = {
        "config.json": 1,
        "tokenizer.json": 1,
        "generation_config.json": 1,
        "model.safetensors": 9,
        "pytorch_model.bin": 9,
        "consolidated.safetensors": 9,
        "original/consolidated.00.pth": 9,
        "params.json": 1,
        "flax_model.msgpack": 9,
        "README.md": 1,
        "sub/config.json": 1,
        "modeling_x.py": 1,
    }
    chosen, skipped = dl.select_files(files)
    assert set(chosen) == {
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "model.safetensors",
        "modeling_x.py",
    }
    assert set(skipped) == set(files) - set(chosen)


def test_select_falls_back_to_mistral_native_then_bin():
    chosen, _ = dl.select_files({"params.json": 1, "consolidated.safetensors": 5, "tekken.json": 1, "x.pth": 3})
    assert set(chosen) == {"params.json", "consolidated.safetensors", "tekken.json"}
    chosen, _ = dl.select_files({"config.json": 1, "pytorch_model.bin": 5, "x.pth": 3})
    assert set(chosen) == {"config.json", "pytorch_model.bin"}
    with pytest.raises(ModelwizError, match="no safetensors"):
        dl.select_files({"config.json": 1, "model.gguf": 5})


# -- a full download ---------------------------------------------------------------------------------
def test_download_fetches_only_what_vllm_needs_identical_and_once(fake_hub, tmp_path):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "models" / "tiny" / "weights"
    events = []
    result = dl.download_model("org/tiny", dest, on_progress=events.append)

    expected, skipped = dl.select_files({p: len(d) for p, d in repo.files.items()})
    assert result.sha == repo.sha and result.files == expected and result.bytes == sum(expected.values())
    assert set(skipped) == {"README.md", "pytorch_model.bin", "original/consolidated.00.pth"}
    assert_identical(dest, repo, expected)
    visible = {p.name for p in dest.iterdir() if not p.name.startswith(".")}
    assert visible == set(expected)
    assert dl.is_complete(dest)
    # Each byte once: nothing went to the HF cache, and the folder holds no second copy.
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    assert not any(p.is_file() and p.stat().st_size > 1000 for p in cache.rglob("*")) if cache.exists() else True
    on_disk = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert on_disk < result.bytes * 1.01 + 16384
    # Fetched at the commit, never a moving branch.
    assert all(f"/resolve/{repo.sha}/" in r.path for r in fake_hub.requests("GET", "/resolve/"))


def test_progress_only_grows_and_ends_at_the_total(fake_hub, tmp_path, small_chunks):
    events = []
    result = dl.download_model("org/tiny", tmp_path / "d", on_progress=events.append)
    done = [e.done_bytes for e in events]
    assert done == sorted(done) and len(events) > 3
    assert all(e.total_bytes == result.bytes for e in events)
    last = events[-1]
    assert (
        last.finished and last.done_bytes == result.bytes and last.files_done == last.files_total == len(result.files)
    )
    assert [e for e in events if e.finished] == [last]
    currents = {e.current for e in events if e.current}
    assert currents <= set(result.files) and any(c.endswith(".safetensors") for c in currents)
    assert any(e.rate_bytes_per_s for e in events)


def test_a_second_run_fetches_nothing(fake_hub, tmp_path):
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    gets_before = len(fake_hub.requests("GET", "/resolve/"))
    events = []
    result = dl.download_model("org/tiny", dest, on_progress=events.append)
    assert result.fetched_bytes == 0
    assert len(fake_hub.requests("GET", "/resolve/")) == gets_before
    assert events[-1].finished and events[-1].message == "already on disk"


def test_plan_counts_what_is_left(fake_hub, tmp_path):
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    (dest / "model-00001-of-00002.safetensors").unlink()
    plan = dl.plan_download("org/tiny", dest)
    assert plan.bytes_to_fetch == plan.files["model-00001-of-00002.safetensors"]
    assert plan.total_bytes - plan.present_bytes == plan.bytes_to_fetch
    assert not dl.is_complete(dest)  # a file the marker lists is gone


# -- disk --------------------------------------------------------------------------------------------
def test_full_disk_is_refused_up_front_with_numbers(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_disk_free", lambda path: 1000)
    with pytest.raises(ModelwizError) as info:
        dl.download_model("org/tiny", tmp_path / "d")
    line = info.value.one_line()
    assert "not enough disk space" in line and "1000 B free" in line and "KiB" in line
    assert not fake_hub.requests("GET", "/resolve/")
    assert not dl.is_complete(tmp_path / "d")


# -- interruptions -----------------------------------------------------------------------------------
def test_a_connection_dropped_mid_file_is_resumed_with_range(fake_hub, tmp_path, small_chunks):
    repo = fake_hub.repos["org/tiny"]
    big = "model-00001-of-00002.safetensors"
    fake_hub.cut_after[big] = 50_000
    result = dl.download_model("org/tiny", tmp_path / "d")
    ranges = [r.headers.get("range") for r in fake_hub.requests("GET", big)]
    assert any(r and r.startswith("bytes=") and r != "bytes=0-" for r in ranges), ranges
    assert_identical(tmp_path / "d", repo, result.files)
    assert dl.is_complete(tmp_path / "d")


def test_a_network_that_stays_down_fails_cleanly_and_the_next_run_resumes(fake_hub, tmp_path, small_chunks):
    repo = fake_hub.repos["org/tiny"]
    big = "model-00001-of-00002.safetensors"
    fake_hub.cut_after[big] = 0
    fake_hub.cut_times[big] = 50
    dest = tmp_path / "d"
    with pytest.raises(hub.HubUnreachable) as info:
        dl.download_model("org/tiny", dest)
    assert "again" in info.value.one_line()
    assert not dl.is_complete(dest) and not (dest / big).exists() and no_partials(dest)
    fake_hub.cut_after.clear()
    fake_hub.cut_times.clear()

    def fetched(requests) -> set[str]:
        return {r.path.split("?")[0].rsplit("/", 1)[-1] for r in requests}

    kept = {p.name for p in dest.iterdir() if p.is_file()}
    before = len(fake_hub.requests("GET"))
    result = dl.download_model("org/tiny", dest)
    again = fetched(fake_hub.requests("GET")[before:])
    assert big in again and not again & kept  # what was finished is kept
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


def test_cancel_keeps_every_byte_and_a_rerun_asks_only_for_the_rest(fake_hub, tmp_path, small_chunks):
    repo = fake_hub.repos["org/tiny"]
    big = "model-00001-of-00002.safetensors"
    fake_hub.hold_path = big  # the big file stalls after its first 64 KiB
    fake_hub.gate.clear()
    cancel = threading.Event()
    dest = tmp_path / "d"
    outcome = []

    def run():
        try:
            dl.download_model("org/tiny", dest, cancel=cancel)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    part = partial_of(dest, repo, big)
    # Cancel once the big file is stalled mid-body and a small file has finished.
    while not (part.exists() and part.stat().st_size >= 32 * 1024 and (dest / "config.json").exists()):
        assert time.monotonic() < deadline, "the big file never started"
        time.sleep(0.01)
    cancel.set()
    fake_hub.gate.set()
    worker.join(10)
    assert outcome and isinstance(outcome[0], Cancelled), outcome
    assert "run the same command again" in outcome[0].one_line()
    assert not (dest / big).exists() and not dl.is_complete(dest)
    # The file in progress is kept, up to what arrived, and nothing else is left half-done.
    have = part.stat().st_size
    assert 64 * 1024 <= have < len(repo.files[big]) and no_partials(dest)
    assert part.read_bytes() == repo.files[big][:have]
    # What it says is kept is what is on disk: the whole files and the partial one.
    kept = sum(p.stat().st_size for p in dest.iterdir() if p.is_file()) + have
    from wizard.units import format_bytes

    assert f"{format_bytes(kept)} of" in outcome[0].message
    assert (dest / "config.json").exists()  # finished files are kept
    fake_hub.hold_path = None
    gets = len(fake_hub.requests("GET", "/config.json"))
    before = len(fake_hub.requests("GET", big))
    events = []
    result = dl.download_model("org/tiny", dest, on_progress=events.append)
    assert len(fake_hub.requests("GET", "/config.json")) == gets  # not fetched again
    # The big file continues where it stopped: one request, for the bytes it lacked.
    assert [r.headers.get("range") for r in fake_hub.requests("GET", big)[before:]] == [f"bytes={have}-"]
    assert events[0].done_bytes == kept and "already on disk" in (events[0].message or "")
    assert result.fetched_bytes == result.bytes - kept
    assert_identical(dest, repo, result.files) and dl.is_complete(dest) and not part.exists()


def test_a_half_done_folder_never_counts_as_complete(fake_hub, tmp_path):
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    assert dl.is_complete(dest)
    # A new commit on the Hub: the marker goes away before the first new byte lands.
    repo = fake_hub.repos["org/tiny"]
    repo.files["model-00002-of-00002.safetensors"] = os.urandom(300_000)
    repo.sha = "1" * 40
    repo._etags.clear()
    fake_hub.hold_path = "model-00002-of-00002.safetensors"
    fake_hub.gate.clear()
    seen = []
    worker = threading.Thread(target=lambda: seen.append(dl.download_model("org/tiny", dest)))
    worker.start()
    deadline = time.monotonic() + 10
    while not fake_hub.requests("GET", "1" * 40 + "/model-00002") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not dl.is_complete(dest)
    fake_hub.gate.set()
    worker.join(10)
    assert seen and seen[0].sha == "1" * 40 and dl.is_complete(dest)
    assert dl.read_marker(dest)["sha"] == "1" * 40


def test_two_downloads_into_one_folder_do_not_mix(fake_hub, tmp_path):
    dest = tmp_path / "d"
    with dl._DestLock(dest):
        with pytest.raises(ModelwizError, match="another modelwiz download"):
            dl.download_model("org/tiny", dest)


# -- access, offline ---------------------------------------------------------------------------------
def test_gated_download_errors(fake_hub, tmp_path, monkeypatch):
    with pytest.raises(hub.GatedNotLoggedIn):
        dl.download_model("org/tiny-gated", tmp_path / "a")
    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)
    with pytest.raises(hub.GatedNoAccess):
        dl.download_model("org/tiny-gated", tmp_path / "b")
    assert not dl.is_complete(tmp_path / "b")
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    result = dl.download_model("org/tiny-gated", tmp_path / "c")
    assert dl.is_complete(tmp_path / "c") and result.files
    # The token travelled in the header only.
    assert all(GOOD_TOKEN not in r.path for r in fake_hub.requests())


def test_not_found_is_bad_input(fake_hub, tmp_path):
    with pytest.raises(hub.ModelNotFound) as info:
        dl.download_model("org/missing", tmp_path / "d")
    assert info.value.exit_code == 2


def test_offline_uses_a_complete_folder_or_says_so(fake_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(fake_hub.requests())
    events = []
    result = dl.download_model("org/tiny", dest, on_progress=events.append)
    assert result.offline and result.sha == fake_hub.repos["org/tiny"].sha
    assert "offline" in events[-1].message
    with pytest.raises(hub.OfflineNotCached):
        dl.download_model("org/tiny", tmp_path / "empty")
    assert len(fake_hub.requests()) == before


def test_same_size_files_of_a_new_commit_are_fetched_again(fake_hub, tmp_path):
    # A new commit whose shard has the same size (or a fine-tune downloaded over its base model):
    # the size alone says nothing; the etag huggingface_hub recorded must match the Hub's.
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    repo = fake_hub.repos["org/tiny"]
    shard = "model-00002-of-00002.safetensors"
    old = repo.files[shard]
    repo.files[shard] = old[:-16] + os.urandom(16)  # same size, other bytes
    repo.sha = "2" * 40
    repo._etags.clear()
    result = dl.download_model("org/tiny", dest)
    assert result.fetched_bytes == len(old)  # only the changed file
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


# -- integrity: every file is checked against the Hub's hash ----------------------------------------
SHARD = "model-00001-of-00002.safetensors"


def test_corrupt_lfs_file_is_refused_and_redownloaded(fake_hub, tmp_path):
    """A mirror serves shard 1 damaged once (right size, right ETag): it is hashed, refused, fetched again."""
    repo = fake_hub.repos["org/tiny"]
    fake_hub.corrupt[SHARD] = 1
    dest = tmp_path / "d"
    result = dl.download_model("org/tiny", dest)
    assert len(fake_hub.requests("GET", SHARD)) == 2
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)
    assert dl.read_marker(dest)["hashes"][SHARD] == hashlib.sha256(repo.files[SHARD]).hexdigest()
    assert dl.verify_folder(dest).ok


def test_a_hub_that_keeps_serving_corrupt_bytes_fails_and_keeps_nothing_bad(fake_hub, tmp_path):
    repo = fake_hub.repos["org/tiny"]
    fake_hub.corrupt[SHARD] = 99
    dest = tmp_path / "d"
    with pytest.raises(dl.CorruptFile) as info:
        dl.download_model("org/tiny", dest)
    line = info.value.one_line()
    assert SHARD in line and "damaged" in line and "run again" in line
    assert not dl.is_complete(dest) and not (dest / SHARD).exists() and no_partials(dest)
    # The Hub is fixed: the rerun fetches the shard (and only what is missing), byte-identical.
    fake_hub.corrupt.clear()
    kept = [p.name for p in dest.iterdir() if p.is_file()]
    before = {name: len(fake_hub.requests("GET", f"/{name}")) for name in kept}
    result = dl.download_model("org/tiny", dest)
    assert {name: len(fake_hub.requests("GET", f"/{name}")) for name in kept} == before
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


def test_corrupt_small_file_is_caught_by_its_git_blob_id(fake_hub, tmp_path):
    repo = fake_hub.repos["org/tiny"]
    assert not repo.is_lfs("tokenizer.json")
    fake_hub.corrupt["tokenizer.json"] = 1
    result = dl.download_model("org/tiny", tmp_path / "d")
    assert len(fake_hub.requests("GET", "/tokenizer.json")) == 2
    assert_identical(tmp_path / "d", repo, result.files)


def test_a_file_a_killed_run_left_unverified_is_hashed_before_it_counts(fake_hub, tmp_path):
    """Killed after huggingface_hub moved a (damaged) small file into place, before it was hashed: the
    rerun finds its recorded etag right, hashes it anyway, and fetches it again. An LFS file is only
    ever moved into place once hashed: one without the recorded hash is not trusted."""
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    small = "tokenizer.json"
    assert not repo.is_lfs(small)
    dl.download_model("org/tiny", dest)
    (dest / dl.MARKER).unlink()
    (dest / dl.VERIFIED).unlink()
    with open(dest / small, "r+b") as f:
        f.write(b"\x00\x01\x02")  # same size, other bytes
    plan = dl.plan_download("org/tiny", dest)
    assert small in plan.present and small not in plan.verified
    assert SHARD not in plan.present
    gets = {name: len(fake_hub.requests("GET", f"/{name}")) for name in (small, SHARD, "config.json")}
    result = dl.download_model("org/tiny", dest)
    assert len(fake_hub.requests("GET", f"/{small}")) == gets[small] + 1
    assert len(fake_hub.requests("GET", SHARD)) == gets[SHARD] + 1
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)
    assert len(fake_hub.requests("GET", "/config.json")) == gets["config.json"]  # hashed, not fetched


def test_bit_flip_on_disk_is_named_by_verify_and_repaired(fake_hub, tmp_path, capsys):
    from wizard.cli import main

    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    assert main(["verify", "--folder", str(dest)]) == 0
    assert "all good" in capsys.readouterr().out
    with open(dest / SHARD, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    assert dl.download_model("org/tiny", dest).fetched_bytes == 0  # a download trusts its finished folder
    assert main(["verify", "--folder", str(dest)]) == 1
    err = capsys.readouterr().err
    assert f"{SHARD} does not match the Hub's hash" in err and "verify --repair" in err
    assert err.count("modelwiz: error:") == 1
    assert main(["verify", "--folder", str(dest), "--repair"]) == 0
    assert "repaired" in capsys.readouterr().out
    assert_identical(dest, repo, dl.read_marker(dest)["files"])
    assert main(["verify", "--folder", str(dest)]) == 0


def test_verify_of_a_folder_without_a_finished_download_says_so(fake_hub, tmp_path, capsys):
    from wizard.cli import main

    (tmp_path / "x").mkdir()
    assert main(["verify", "--folder", str(tmp_path / "x")]) == 1
    assert "holds no finished modelwiz download" in capsys.readouterr().err


# -- the --to folder ---------------------------------------------------------------------------------
def test_download_to_a_folder_with_the_users_files_is_refused(fake_hub, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "config.json").write_text('{"mine": true}')
    with pytest.raises(UsageError) as info:
        dl.download_model("org/tiny", dest)
    assert "is not empty (it holds config.json, notes.txt)" in info.value.one_line()
    assert (dest / "config.json").read_text() == '{"mine": true}'
    assert not fake_hub.requests("GET", "/resolve/")


def test_download_to_a_folder_holding_another_model_is_refused(fake_hub, tmp_path):
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    with pytest.raises(UsageError, match="holds a download of org/tiny, not org/odd-arch"):
        dl.download_model("org/odd-arch", dest)
    assert dl.is_complete(dest) and not (dest / "model.safetensors").exists()


def test_a_new_revision_of_the_same_model_leaves_no_stale_files(fake_hub, tmp_path):
    """Resuming into the same folder is allowed; files of the earlier commit that the new one lacks
    (an old shard index beside a new single file, which vLLM would read) are deleted."""
    dest = tmp_path / "d"
    dl.download_model("org/tiny", dest)
    repo = fake_hub.repos["org/tiny"]
    single = {k: v for k, v in repo.files.items() if "safetensors" not in k}
    single["model.safetensors"] = repo.files[SHARD]
    fake_hub.add(FakeRepo("org/tiny", single))
    result = dl.download_model("org/tiny", dest)
    weights = sorted(p.name for p in dest.iterdir() if "safetensors" in p.name)
    assert weights == ["model.safetensors"] and dl.is_complete(dest) and result.sha == fake_hub.repos["org/tiny"].sha


def test_an_unwritable_to_folder_is_one_line(fake_hub, tmp_path):
    dest = tmp_path / "ro"
    dest.mkdir()
    os.chmod(dest, 0o555)
    if os.access(dest / ".", os.W_OK) and os.geteuid() == 0:
        # root writes anywhere: use a path below a regular file instead, which no one can create
        (tmp_path / "file").write_text("x")
        dest = tmp_path / "file" / "sub"
    with pytest.raises(ModelwizError) as info:
        dl.download_model("org/tiny", dest)
    assert type(info.value) in (ModelwizError, UsageError)
    assert "choose" in info.value.one_line() and "unexpected" not in info.value.one_line()


# -- Hub failures: each with its own cause -----------------------------------------------------------
def test_a_hub_server_error_is_reported_as_the_servers_not_the_networks(fake_hub, tmp_path, monkeypatch):
    from huggingface_hub.utils import _http

    fast_time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fast_time.sleep = lambda s: None
    monkeypatch.setattr(_http, "time", fast_time)  # no backoff sleeps between huggingface_hub's retries
    fake_hub.fail_status, fake_hub.fail_times = 500, 1000
    with pytest.raises(hub.HubUnreachable) as info:
        dl.download_model("org/tiny", tmp_path / "d")
    line = info.value.one_line()
    assert "server error (HTTP 500)" in line and "check the network" not in line
    fake_hub.fail_times = 0
    dl.download_model("org/tiny", tmp_path / "d")
    assert dl.is_complete(tmp_path / "d")


def test_a_stalled_body_is_a_timeout_not_a_network_outage(fake_hub, tmp_path, small_chunks, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.3)
    fake_hub.stall.add(SHARD)
    with pytest.raises(hub.HubUnreachable) as info:
        dl.download_model("org/tiny", tmp_path / "d")
    assert "stopped sending data" in info.value.one_line() and "timed out" in info.value.one_line()
    assert not dl.is_complete(tmp_path / "d")


def test_disk_full_during_a_download_says_disk_full(fake_hub, tmp_path):
    import errno

    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d" / SHARD))
    line = hub.translate_error(error, "org/tiny").one_line()
    assert line.startswith("the disk is full") and "free some space" in line and "kept" in line


def test_credentials_in_hf_endpoint_are_never_shown(fake_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    secret = fake_hub.endpoint.replace("http://", "http://mirroruser:MiRrOrPaSs@")
    monkeypatch.setattr(constants, "ENDPOINT", secret)
    assert "MiRrOrPaSs" not in hub.access_url("org/tiny-gated")
    assert hub.access_url("org/tiny-gated").startswith("http://***@127.0.0.1:")
    for error in (hub.translate_error(ConnectionError(), "org/x"), hub.GatedNotLoggedIn("org/tiny-gated")):
        assert "MiRrOrPaSs" not in error.one_line() and "mirroruser" not in error.one_line()
    monkeypatch.setattr(constants, "ENDPOINT", "http://u:PASS@127.0.0.1:1")
    hub._REACHED.clear()
    with pytest.raises(hub.HubUnreachable) as info:
        hub.ensure_reachable("look up org/x")
    assert "PASS" not in info.value.one_line() and "127.0.0.1:1" in info.value.one_line()


def test_a_folder_left_by_a_refused_download_takes_another_model(fake_hub, tmp_path):
    dest = tmp_path / "d"
    with pytest.raises(hub.ModelNotFound):
        dl.download_model("org/missing", dest)
    dl.download_model("org/tiny", dest)
    assert dl.is_complete(dest) and dl.held_model(dest) == "org/tiny"


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KiB file system (tmpfs); skipped where mounting is not allowed (not root)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_that_fills_up_mid_download_says_disk_full(fake_hub, tmp_path, small_disk, monkeypatch):
    # The up-front space check passes (the disk filled up after it, as another writer would do it).
    monkeypatch.setattr(dl, "_disk_free", lambda path: 10**12)
    dest = small_disk / "d"
    with pytest.raises(ModelwizError) as info:
        dl.download_model("org/tiny", dest)
    line = info.value.one_line()
    assert line.startswith("the disk is full") and "free some space" in line and "unexpected" not in line
    assert not dl.is_complete(dest) and no_partials(dest)


def test_a_read_only_to_folder_is_one_line(fake_hub, tmp_path):
    """An existing --to folder modelwiz cannot write (a read-only file system here; for a plain
    user, another user's folder) is refused in one line, not 'unexpected PermissionError'."""
    import subprocess

    mount = tmp_path / "ro"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)]).returncode
    ):
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        with pytest.raises(ModelwizError) as info:
            dl.download_model("org/tiny", mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    line = info.value.one_line()
    assert line.startswith(f"cannot write to {mount}: Read-only file system") and "choose a folder" in line
