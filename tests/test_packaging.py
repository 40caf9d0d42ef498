"""The wheel: built from the tree, installed into a fresh virtual environment, run."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("modelwiz-*.whl")
    return built


def test_wheel_holds_the_packages_and_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "wizard/cli.py" in names
    assert "wizard/assets/data/triton-vllm-images.tsv" in names
    assert any(n.startswith("wizard/assets/data/vllm-engine-args/") for n in names)
    assert any(n.startswith("screens/") for n in names)
    for tcss in ROOT.glob("screens/**/*.tcss"):
        assert tcss.relative_to(ROOT).as_posix() in names
    assert not any(n.startswith(("tests/", "assets/")) for n in names)


def test_installed_wheel_runs_and_finds_its_assets(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # The fresh environment sees the already-installed dependencies, but not this checkout.
    venv.EnvBuilder(with_pip=False, system_site_packages=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # pip >= 22.3 installs into another environment with --python.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    version = subprocess.run(
        [str(env_dir / "bin" / "modelwiz"), "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("modelwiz ")
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import wizard.paths as p; print(p.assets_dir()); print(p.data_file('triton-vllm-images.tsv').is_file())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
        timeout=60,
    )
    assets, exists = where.stdout.split()
    assert "site-packages/wizard/assets" in assets
    assert exists == "True"


def test_editable_checkout_finds_the_live_assets():
    from wizard.paths import assets_dir

    assert (assets_dir() / "data" / "triton-vllm-images.tsv").is_file()
