"""The core loads no UI library, and the TUI's first screen loads nothing heavy (checked in a
subprocess: this pytest process already has Textual loaded)."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import wizard

ROOT = Path(__file__).resolve().parent.parent
UI = ("textual", "questionary", "prompt_toolkit")
HEAVY = ("huggingface_hub", "podman", "google.protobuf", "tritonclient", "pynvml")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_modules_import_no_ui():
    names = [m.name for m in pkgutil.walk_packages(wizard.__path__, "wizard.")]
    skip = {"wizard.cli", "wizard.interactive", "wizard.__main__"}
    imports = "\n".join(f"import {n}" for n in names if n not in skip)
    modules = loaded_after(imports)
    assert [m for m in modules if m.split(".")[0] in UI] == []


def test_first_screen_imports_nothing_heavy():
    modules = loaded_after("import screens.app, screens.machine, screens.step, wizard.service")
    assert [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []


def test_the_wizard_path_imports_no_command_module():
    """`modelwiz` without a command builds its parser without importing a command's core (they
    cost the first paint tens of milliseconds); `modelwiz add ...` imports exactly `add`."""
    modules = loaded_after(
        "from wizard.cli import build_parser\nbuild_parser(['--gpus', 'H100']).parse_args(['--gpus', 'H100'])"
    )
    assert [m for m in modules if m.startswith("wizard.commands.")] == []
    assert "wizard.add_flow" not in modules and "wizard.planner" not in modules
    modules = loaded_after("from wizard.cli import build_parser\nbuild_parser(['add', '--help'])")
    assert "wizard.commands.add" in modules
    assert {"wizard.commands.export", "wizard.commands.verify", "wizard.commands.gpus"}.isdisjoint(modules)


def test_the_wizard_first_paint_imports_only_what_it_shows():
    """What `modelwiz` imports before its first frame (the console script, the app, the core
    service, the machine step and the home screen): nothing heavy, no template or TOML writer, no
    command module, and no TextArea (only the Done screen has one; the q key asks the focused
    widget instead). Nor what only later steps use: the container spec and its OpenAI frontend,
    a checkpoint's metadata, download progress, the home screen's panels (chat, log) and their Log widget."""
    modules = loaded_after(
        "import wizard.cli, wizard.interactive, screens.app, screens.machine, screens.home, wizard.core_service"
    )
    later = (
        "wizard.container",
        "wizard.openai_frontend",
        "wizard.model_meta",
        "wizard.progress",
        "screens.home_panels",
    )
    not_yet = (
        *HEAVY,
        "jinja2",
        "tomlkit",
        "textual.widgets._text_area",
        "textual.widgets._log",
        "wizard.commands",
        *later,
    )
    assert [m for m in modules if any(m == n or m.startswith(n + ".") for n in not_yet)] == []
