import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures_repository import FakeReader, fake_plan_models, write_model_folder
from tests.test_repository import add, check_consistent
from wizard.add_flow import AddRequest, describe_proposal, placement_warnings, prepare_add
from wizard.cli import main
from wizard.errors import ModelwizError
from wizard.gpus import describe
from wizard.manifest import load_manifest
from wizard.repository import READY, Repository, configured_repository, resolve_repository

ROOT = Path(__file__).resolve().parent.parent


def test_changed_budgets_are_shown_never_silent(tmp_path):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"))
    repo = Repository.open(root)
    entry = repo.manifest.get("first-7b")
    repo.record(replace(entry, plan=replace(entry.plan, gpu_memory_utilization=0.85)))  # a greedy budget
    proposal = prepare_add(
        repo,
        [AddRequest("org/second-7b")],
        inventory=describe("H100-80GB"),
        image_ref=None,
        planner=fake_plan_models,
        reader=FakeReader(),
    )
    [change] = proposal.changed
    assert change.old.gpu_memory_utilization == 0.85 and change.new.gpu_memory_utilization == 0.27
    text = "\n".join(describe_proposal(proposal))
    assert "CHANGE first-7b" in text and "util 0.85" in text and "util 0.27" in text
    # Nothing is written before execute_add.
    assert load_manifest(root).get("first-7b").plan.gpu_memory_utilization == 0.85


def test_placement_warning_for_tp_engine_not_on_first_gpus():
    from tests.fixtures_repository import make_plan

    plans = [make_plan("small", devices=("0",)), make_plan("big", tp=2, devices=("1", "2"))]
    [warning] = placement_warnings(plans, ("0", "1", "2"))
    assert "big" in warning and "host 0, 1" in warning


def test_repository_location_order(tmp_path, monkeypatch):
    from wizard.errors import UsageError
    from wizard.repository import remember_repository

    with pytest.raises(UsageError, match="no model repository") as info:
        resolve_repository(None)
    assert "--repository" in info.value.hint
    assert resolve_repository(None, ask=lambda: str(tmp_path / "asked")) == tmp_path / "asked"
    remember_repository(tmp_path / "remembered")
    assert configured_repository() == tmp_path / "remembered"
    monkeypatch.setenv("MODEL_REPOSITORY", str(tmp_path / "env"))
    assert resolve_repository(None) == tmp_path / "env"
    assert resolve_repository(str(tmp_path / "flag")) == tmp_path / "flag"


def test_cli_add_status_remove_end_to_end(tmp_path, capsys):
    model = write_model_folder(tmp_path / "src" / "Tiny-Llama")
    repo = tmp_path / "repo"
    rc = main(
        [
            "add",
            str(model),
            "--repository",
            str(repo),
            "--gpus",
            "2xH100-80GB",
            "--yes",
            "--no-launch",
            "--max-model-len",
            "2048",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "add tiny-llama" in out
    assert (repo / "tiny-llama/Tiny-Llama/model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    assert (repo / "tiny-llama/Tiny-Llama/model.safetensors").stat().st_ino == (
        model / "model.safetensors"
    ).stat().st_ino
    check_consistent(repo)
    data = json.loads((repo / "tiny-llama/1/model.json").read_text())
    assert data["model"] == "/opt/app-root/mnt/model_repository/tiny-llama/Tiny-Llama"
    assert data["max_model_len"] == 2048
    # remembered: status needs no --repository now
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["repository"] == str(repo)
    [row] = status["models"]
    assert row["name"] == "tiny-llama" and row["state"] == READY and row["revision"] is None
    assert row["plan"]["max_model_len"] == 2048
    assert main(["status"]) == 0
    assert "tiny-llama  [ready]" in capsys.readouterr().out
    assert main(["remove", "nothere", "--yes"]) == 2
    assert "no model 'nothere'" in capsys.readouterr().err
    assert main(["remove", "tiny-llama", "--yes"]) == 0
    assert not (repo / "tiny-llama").exists()
    assert (model / "model.safetensors").exists()  # the source folder is untouched


@pytest.mark.podman
def test_cli_add_then_add_again_into_the_running_server(
    tmp_path, podman_service, podman_client, standin_image, cdi_gpus, monkeypatch, capsys
):
    """The product's re-run path for real: add + up, then `add` loads the new model into the
    running server (same container, no restart), reloading models whose budgets changed."""
    from tests.fixtures_podman import free_port
    from wizard.triton_http import TritonHttp

    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    repo = tmp_path / "r"
    first, second = write_model_folder(tmp_path / "first"), write_model_folder(tmp_path / "second")
    gpus = ["--gpus", "H100-80GB"]
    # --fill: the first model takes the whole GPU, so adding the second must re-plan it.
    assert main(["add", str(first), "--repository", str(repo), *gpus, "--yes", "--no-launch", "--fill"]) == 0
    name, http = podman_service.container_name(), free_port()
    ports = ["--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    assert main(["up", "--repository", str(repo), "--image", standin_image, "--name", name, *ports]) == 0
    container = podman_client.containers.get(name)
    started = container.attrs["State"]["StartedAt"]
    capsys.readouterr()

    try:
        # No --image, --name or ports: the re-run finds the server serving this repository.
        assert main(["add", str(second), "--repository", str(repo), *gpus, "--yes"]) == 0
        out, err = capsys.readouterr()
        assert f"HTTP     http://127.0.0.1:{http}" in out
        container.reload()
        assert container.id == podman_client.containers.get(name).id
        assert container.attrs["State"]["StartedAt"] == started  # not restarted
        states = {m.name: m.state for m in TritonHttp(f"http://127.0.0.1:{http}").repository_index()}
        assert states == {"first": "READY", "second": "READY"}
        # The joint plan gave "first" a smaller budget: it was loaded again, after an unload.
        assert "unloading first to load it again with its new budget" in err
        status = json.loads(_status_json(repo, capsys))
        assert {m["name"]: m["server_state"] for m in status["models"]} == {"first": "READY", "second": "READY"}
        assert status["server"]["name"] == name and status["server"]["state"] == "running"
        assert status["server"]["url"] == f"http://127.0.0.1:{http}"
        assert main(["status", "--repository", str(repo)]) == 0
        assert f"Server: {name} running at http://127.0.0.1:{http}" in capsys.readouterr().out
        # A file changed after loading (here by hand): the next `up` loads that model again.
        model_json = repo / "second" / "1" / "model.json"
        engine = json.loads(model_json.read_text())
        model_json.write_text(json.dumps({**engine, "max_num_seqs": 8}))
        assert main(["up", "--repository", str(repo)]) == 0
        err = capsys.readouterr().err
        assert "unloading second to load it again" in err and "unloading first" not in err
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started
    finally:
        assert main(["down", "--name", name]) == 0


def _status_json(repo: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["status", "--repository", str(repo), "--json"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "org/x", "--name", "..", "--yes"],
        ["add", "org/x", "--name", "a/b", "--yes"],
        ["add", "org/x", "--name", "/abs", "--yes"],
        ["add", "org/x", "--name", "Upper", "--yes"],
        ["add", "org/x", "--name", "", "--yes"],
        ["add", "org/x", "org/y", "--name", "n", "--yes"],
        ["add", "org/x", "--max-model-len", "0", "--yes"],
        ["add", "../nope/x", "--yes"],
        ["add", "org/x"],  # no terminal to confirm on, no --yes
        ["remove", ".."],
        ["remove", "absent"],
        ["status", "--repository", "/does/not/exist"],
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    argv = argv + (["--repository", str(tmp_path / "r")] if "--repository" not in argv else [])
    rc = main([*argv, "--gpus", "H100-80GB"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # a refused add creates nothing


def test_remove_without_terminal_needs_a_choice(tmp_path, capsys):
    model = write_model_folder(tmp_path / "m")
    main(["add", str(model), "--repository", str(tmp_path / "r"), "--gpus", "H100-80GB", "--yes", "--no-launch"])
    assert main(["remove", "m"]) == 2
    assert "--keep-weights" in capsys.readouterr().err
    assert main(["remove", "m", "--keep-weights"]) == 0
    assert (tmp_path / "r/m/m/config.json").exists()
    assert load_manifest(tmp_path / "r").names == ()


_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from tests.fixtures_repository import FakeDownloader, write_model_folder
    from tests.test_repository import add
    from wizard import fsutil
    from wizard.gpus import describe
    root, point = Path(sys.argv[1]), sys.argv[2]

    class Hanging(FakeDownloader):
        def __call__(self, repo_id, dest, **kw):
            (Path(dest)).mkdir(parents=True, exist_ok=True)
            (Path(dest) / "config.json").write_text("{}")
            print("downloading", flush=True)
            time.sleep(60)

    if point == "download":
        add(root, "org/a-70b", inventory=describe("4xH100-80GB"), downloader=Hanging())
    else:
        real, n = os.replace, {"calls": 0}
        def killing(src, dst):
            n["calls"] += 1
            if n["calls"] == int(point):
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        fsutil.os.replace = killing
        add(root, "org/a-70b", inventory=describe("4xH100-80GB"))
    print("finished", flush=True)
""")


# Every os.replace of the add (the commit is recorded with the model, before the download: 5).
@pytest.mark.parametrize("point", ["download", "1", "2", "3", "4", "5"])
def test_killed_add_leaves_a_consistent_repository(tmp_path, point):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"))
    first = {p: p.read_bytes() for p in (root / "first-7b").glob("**/*") if p.is_file()}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), point], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    line = child.stdout.readline().strip()
    if line == "downloading":
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, line
    repo = Repository.open(root)
    new = repo.model("a-70b")
    assert new is None or new.state != READY  # never listed ready
    assert repo.model("first-7b").ready
    for path, data in first.items():  # old bytes, or modelwiz's new ones
        if path.exists() and path.read_bytes() != data:
            rel = path.relative_to(root / "first-7b").as_posix()
            assert repo.file_status(repo.manifest.get("first-7b"), rel) == "ok"
    add(root, "org/a-70b", inventory=describe("4xH100-80GB"))  # the same command again finishes
    repo = check_consistent(root)
    assert [m.name for m in repo.models() if m.ready] == ["a-70b", "first-7b"]
    from wizard.fsutil import is_temp_file

    assert not [p for p in root.rglob("*") if is_temp_file(p.name)]


def test_core_modules_import_no_ui():
    code = (
        "import sys, wizard.add_flow, wizard.repository, wizard.repo_status, wizard.manifest, "
        "wizard.commands.add, wizard.commands.remove, wizard.commands.status; "
        "print([m for m in ('textual', 'questionary') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_interrupted_add_keeps_the_joint_budget(tmp_path):
    """The re-planned budgets of the models already there are applied before the download, so
    resuming an interrupted add never serves old and new budgets side by side."""
    import threading

    from tests.planner_data import write_real_model_folder
    from wizard.add_flow import execute_add
    from wizard.errors import Cancelled

    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    small = write_model_folder(tmp_path / "tiny")
    root = tmp_path / "repo"
    inventory = describe("L4")

    repo = Repository.open(root, create=True)
    proposal = prepare_add(repo, [AddRequest(str(big))], inventory=inventory, fill=True)
    execute_add(repo, proposal)
    assert Repository.open(root).manifest.get("l8").plan.gpu_memory_utilization == 0.95

    repo = Repository.open(root)
    proposal = prepare_add(repo, [AddRequest(str(small))], inventory=inventory)
    assert [c.new.name for c in proposal.changed] == ["l8"]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        execute_add(repo, proposal, cancel=cancel)

    def served_utilizations():
        return {
            p.parent.parent.name: json.loads(p.read_text())["gpu_memory_utilization"]
            for p in root.glob("*/1/model.json")
        }

    shrunk = served_utilizations()["l8"]
    assert shrunk < 0.95  # applied before the copy started
    # Resume: the same command again.
    repo = Repository.open(root)
    execute_add(repo, prepare_add(repo, [AddRequest(str(small))], inventory=inventory))
    served = served_utilizations()
    assert set(served) == {"l8", "tiny"} and served["l8"] == shrunk
    assert sum(served.values()) <= 0.95


def test_a_hand_edited_budget_is_respected(tmp_path):
    """What the server uses is what model.json says: a hand-raised budget is planned around, and
    modelwiz refuses to shrink a budget someone set by hand."""
    from tests.planner_data import write_real_model_folder
    from wizard.add_flow import execute_add

    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    small = write_model_folder(tmp_path / "tiny")
    root = tmp_path / "repo"
    inventory = describe("L40S")
    repo = Repository.open(root, create=True)
    # Room kept free (the GPUs are filled by default) so that the hand edit below raises the budget.
    execute_add(repo, prepare_add(repo, [AddRequest(str(big))], inventory=inventory, reserve_bytes=20 * 1024**3))
    model_json = root / "l8" / "1" / "model.json"
    engine = json.loads(model_json.read_text())
    assert engine["gpu_memory_utilization"] < 0.9
    model_json.write_text(json.dumps({**engine, "gpu_memory_utilization": 0.95}))  # by hand

    repo = Repository.open(root)
    with pytest.raises(ModelwizError) as info:
        prepare_add(repo, [AddRequest(str(small))], inventory=inventory)
    assert "edited by hand" in info.value.message and "model.json" in info.value.hint
    assert json.loads(model_json.read_text())["gpu_memory_utilization"] == 0.95  # untouched
