"""`modelwiz verify`: a repository's weights re-hashed against what the Hub listed when they came."""

from __future__ import annotations

import hashlib

from tests.fixtures_repository import write_model_folder
from wizard import cli
from wizard.manifest import load_manifest

SHARD = "model-00001-of-00002.safetensors"


def test_verify_names_the_damaged_file_of_a_repository_model_and_repairs_it(fake_hub, tmp_path, capsys):
    repo = tmp_path / "repo"
    args = ["--repository", str(repo)]
    assert cli.main(["add", "org/tiny", *args, "--gpus", "L4", "--yes", "--no-launch"]) == 0
    local = write_model_folder(tmp_path / "mine")
    assert cli.main(["add", str(local), *args, "--gpus", "L4", "--yes", "--no-launch"]) == 0
    capsys.readouterr()
    assert cli.main(["verify", *args]) == 0
    out, err = capsys.readouterr()
    assert "tiny: 8 files match the Hub's hashes" in out and out.rstrip().endswith("all good")
    assert "mine: copied from a local folder" in err

    entry = load_manifest(repo).get("tiny")
    shard = repo / "tiny" / entry.weights / SHARD
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # one bit flip on disk, same size
    shard.write_bytes(bytes(data))
    assert cli.main(["verify", "tiny", *args]) == 1
    out, err = capsys.readouterr()
    assert f"modelwiz: error: tiny: {SHARD} does not match the Hub's hash" in err and "--repair" in err
    assert cli.main(["verify", "tiny", *args, "--repair"]) == 0
    assert "repaired" in capsys.readouterr().out
    expected = hashlib.sha256(fake_hub.repos["org/tiny"].files[SHARD]).hexdigest()
    assert hashlib.sha256(shard.read_bytes()).hexdigest() == expected
    assert cli.main(["verify", *args]) == 0


def test_verify_of_an_unknown_model_is_one_line(fake_hub, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert cli.main(["add", "org/tiny", "--repository", str(repo), "--gpus", "L4", "--yes", "--no-launch"]) == 0
    capsys.readouterr()
    assert cli.main(["verify", "nope", "--repository", str(repo)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
