"""Plain mode driven through scripted questionary prompts (harlequin's FakePrompt pattern)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_screens import (
    ScriptedQuestionary,
    existing_llama_plan,
    first_matching,
    seeded_repository,
    unfinished,
)
from wizard import plain
from wizard.errors import ModelwizError
from wizard.gpus import NvmlError
from wizard.wizard_state import WizardState

ROOT = Path(__file__).resolve().parent.parent


def run(backend, script):
    q = ScriptedQuestionary(script)
    out = io.StringIO()
    code = plain.run_plain(None, service=backend, prompts=plain.Prompts(q), out=out)
    assert not q.script, f"prompts not asked: {q.script}"
    return code, out.getvalue(), q


def test_plain_flow_end_to_end(fake_backend):
    code, out, _ = run(
        fake_backend,
        [
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching("Qwen/Qwen2.5-7B-Instruct")),
            ("confirm", "Add another", False),
            ("select", "What now", "Change a context length"),
            ("select", "Which model", "qwen2.5-7b-instruct"),  # the name the core gave it
            ("text", "Context length", "8192"),
            ("select", "What now", "Download and launch"),
            ("text", "Test prompt", "hello"),
            ("text", "Test prompt", ""),
        ],
    )
    assert code == 0
    assert "GPU 0  NVIDIA H100 80GB HBM3" in out
    assert (
        "  qwen2.5-7b-instruct  (Qwen/Qwen2.5-7B-Instruct)\n    ✔ fits  GPU 0 · each copy on one GPU (tensor_parallel_size 1)"
        in out
    )
    assert "context 8,192 tokens (max_model_len)" in out
    assert "[WWW" in out and "W weights, K KV cache" in out  # the memory bar and its legend
    assert "download Qwen/Qwen2.5-7B-Instruct" in out and "done" in out
    assert "qwen2.5-7b-instruct: ready" in out
    assert "curl -s -X POST http://127.0.0.1:8000/v2/models/qwen2.5-7b-instruct/generate" in out
    assert "Triton serves models." in out
    plans = [c for c in fake_backend.calls if c[0] == "plan"]
    assert plans[-1][1][0].max_model_len == 8192
    # it leaves with the summary the Textual app prints (wizard_flow.exit_summary)
    summary = out[out.index("Triton is running") :]
    assert "  Triton HTTP (/v2)  http://127.0.0.1:8000" in summary
    assert "modelwiz chat qwen2.5-7b-instruct" in summary
    assert "modelwiz status" in summary and "modelwiz down      stop the server" in summary


def test_plain_refuses_gated_and_describes_gpus_without_nvml(fake_backend):
    fake_backend.spec = None
    fake_backend.nvml_error = NvmlError("no NVIDIA driver found", hint="install the NVIDIA driver, or use --gpus")
    code, out, _ = run(
        fake_backend,
        [
            ("text", "Describe the GPUs", "1xH100-80GB"),
            ("text", "Search", "llama-3.1-8b"),
            ("select", "Pick a model", first_matching("meta-llama/Llama-3.1-8B-Instruct")),
            ("text", "Search", ""),
            ("select", "Pick a model", first_matching("Mistral")),
            ("confirm", "Add another", False),
            ("select", "What now", "Quit"),
        ],
    )
    assert code == 130
    assert "✖ GPUs: no NVIDIA driver found; install the NVIDIA driver" in out
    assert "gated" in out and "accept its terms" in out


def test_plain_rerun_lists_existing_and_disk_full_fails(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)
    fake_backend.disk_free = 1024**3
    with pytest.raises(ModelwizError, match="not enough disk space"):
        run(
            fake_backend,
            [
                ("select", "Home", "Add models"),
                ("text", "Search", "mistral"),
                ("select", "Pick a model", first_matching("Mistral")),
                ("confirm", "Add another", False),
                ("select", "What now", "Download and launch"),
            ],
        )
    assert not any(c[0] == "download" for c in fake_backend.calls)


def test_plain_launch_failure_raises_with_hint(fake_backend):
    fake_backend.launch_error = ModelwizError("model failed to load: CUDA out of memory", hint="lower the context")
    with pytest.raises(ModelwizError, match="CUDA out of memory") as info:
        run(
            fake_backend,
            [
                ("text", "Search", "mistral"),
                ("select", "Pick a model", first_matching("Mistral")),
                ("confirm", "Add another", False),
                ("select", "What now", "Download and launch"),
            ],
        )
    assert info.value.hint == "lower the context"


def test_progress_lines_are_throttled():
    from wizard.progress import ProgressEvent

    now = [0.0]
    out = io.StringIO()
    lines = plain.ProgressLines(out, clock=lambda: now[0])
    for i in range(10):
        lines(ProgressEvent("download x", i * 100, 1000))
        now[0] += 0.3
    lines(ProgressEvent("download x", 1000, 1000, finished=True))
    printed = out.getvalue().splitlines()
    assert len(printed) == 4  # t=0, 1.2, 2.4 and the finish
    assert printed[-1].endswith("done")


def test_no_terminal_at_all_exits_2():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "wizard", "--gpus", "2xH100-80GB"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
    )
    assert proc.returncode == 2
    assert "modelwiz add MODEL --yes" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


QUIT_CODE = 130  # the user quit


def test_plain_over_the_real_core_recovers_from_a_context_above_the_models_limit(fake_hub, tmp_path):
    from wizard.core_service import CoreService

    backend = CoreService(spec="L4", repository=tmp_path / "repo")
    script = [
        ("text", "Search", "tiny"),
        ("select", "Pick a model", first_matching("org/tiny  (")),
        ("confirm", "Add another", False),
        ("select", "What now", "Change a context length"),
        ("select", "Which model", "tiny"),
        ("text", "Context length", "8192"),  # org/tiny's limit is 2048
        ("select", "What now", "Quit"),  # asked again: the wizard went on
    ]
    q = ScriptedQuestionary(script)
    out = io.StringIO()
    code = plain.run_plain(None, service=backend, prompts=plain.Prompts(q), out=out)
    assert code == QUIT_CODE
    assert not q.script, q.script
    assert "✖ --max-model-len 8192 is above org/tiny's limit of 2048 tokens" in out.getvalue()


def test_plain_rerun_over_the_real_core_resumes_an_unfinished_add(fake_hub, tmp_path):
    from wizard.core_service import CoreService
    from wizard.manifest import load_manifest

    repo = tmp_path / "repo"
    seeded_repository(repo, finished=False)
    assert not load_manifest(repo).get("tiny").complete
    service = CoreService(spec="L4", repository=repo)
    q = ScriptedQuestionary(
        [
            ("select", "Home", "Add models"),
            ("text", "Search", "tiny"),
            ("select", "Pick a model", first_matching("org/tiny  (")),
            ("confirm", "Add another", False),
            ("select", "What now", "Quit"),
        ]
    )
    out = io.StringIO()
    assert plain.run_plain(None, service=service, prompts=plain.Prompts(q), out=out) == QUIT_CODE
    assert "  tiny  (org/tiny)" in out.getvalue()  # as `modelwiz add org/tiny` would: resumed, not tiny-2
    assert "tiny-2" not in out.getvalue()


def test_plain_rerun_over_the_real_core_refuses_a_finished_duplicate_until_named(fake_hub, tmp_path):
    from wizard.core_service import CoreService

    repo = tmp_path / "repo"
    seeded_repository(repo, finished=True)
    service = CoreService(spec="L4", repository=repo)
    q = ScriptedQuestionary(
        [
            ("select", "Home", "Add models"),
            ("text", "Search", "tiny"),
            ("select", "Pick a model", first_matching("org/tiny  (")),
            ("confirm", "Add another", False),
            ("select", "What now", "Name a model"),
            ("select", "Which model", "org/tiny"),
            ("text", "Name for", "tiny-copy"),
            ("select", "What now", "Quit"),
        ]
    )
    out = io.StringIO()
    assert plain.run_plain(None, service=service, prompts=plain.Prompts(q), out=out) == QUIT_CODE
    text = out.getvalue()
    assert "✖ org/tiny is already in the repository as 'tiny'" in text  # the CLI's refusal
    assert "  tiny-copy  (org/tiny)" in text


# ---------------------------------------------------------------------------------------------
# The plan's one-key actions, as menu choices


QWEN = "Qwen/Qwen2.5-7B-Instruct"
PICK_QWEN = [
    ("text", "Search", "qwen2.5-7b"),
    ("select", "Pick a model", first_matching(QWEN)),
    ("confirm", "Add another", False),
]


def test_plain_uses_the_context_the_planner_says_fits(fake_backend):
    def offered_the_fix(choices):
        assert "Download and launch" not in choices  # it does not fit
        return "Use 8,192 tokens for qwen2.5-7b-instruct"

    code, out, _ = run(
        fake_backend,
        [
            *PICK_QWEN,
            ("select", "What now", "Change a context length"),
            ("select", "Which model", "qwen2.5-7b-instruct"),
            ("text", "Context length", "32768"),
            ("select", "What now", "Change how many requests at once"),
            ("select", "Which model", "qwen2.5-7b-instruct"),
            ("text", "Full-length requests at once", "99"),
            ("select", "What now", offered_the_fix),
            ("select", "What now", lambda choices: "Quit" if "Download and launch" in choices else "no GO"),
        ],
    )
    assert code == QUIT_CODE
    assert "✖ does not fit" in out and "--max-model-len 8192" in out
    plans = [c[1][0] for c in fake_backend.calls if c[0] == "plan"]
    assert (plans[-2].max_model_len, plans[-2].min_concurrency) == (32768, 99)
    assert (plans[-1].max_model_len, plans[-1].min_concurrency) == (8192, 99)  # the concurrency is kept
    assert "context 8,192 tokens (max_model_len)" in out  # the plain-words card (plan_render)
    assert "memory share 0.90 (gpu_memory_utilization)" in out


def test_plain_keeps_room_per_gpu_for_later_models_and_the_choice_reaches_the_state(fake_backend):
    from wizard.plan_render import KEEP_FREE_BYTES

    backend = fake_backend
    q = ScriptedQuestionary(
        [
            *PICK_QWEN,
            ("select", "What now", "Change how many requests at once"),
            ("select", "Which model", "qwen2.5-7b-instruct"),
            ("text", "Full-length requests at once", "10"),
            ("select", "What now", "Keep 20.0 GiB free per GPU for later models"),
            ("select", "What now", "Fill free memory (give the kept room to these models)"),  # and back
            ("select", "What now", "Keep 20.0 GiB free per GPU for later models"),
            ("select", "What now", "Download and launch"),
            ("text", "Test prompt", ""),
        ]
    )
    out = io.StringIO()
    wizard = plain.PlainWizard(backend, plain.Prompts(q), out)
    assert wizard.run(WizardState(spec=backend.spec)) == 0
    assert not q.script
    # 15 GiB of weights and 10 requests' KV cache fit one H100; with 20 GiB kept free they need both
    assert re.findall(r"tensor_parallel_size (\d)", out.getvalue()) == ["1", "1", "2", "1", "2"]
    assert wizard.state.reserve_bytes == KEEP_FREE_BYTES
    assert wizard.state.plan is not None and wizard.state.plan.models[0].tensor_parallel_size == 2


# ---------------------------------------------------------------------------------------------
# Logging in to Hugging Face from the wizard


class SecretScript(ScriptedQuestionary):
    """The scripted questionary with questionary's hidden prompt."""

    def password(self, message, **kwargs):
        return self._next("password", message, **kwargs)


def test_plain_logs_in_with_a_hidden_token_that_is_never_shown(fake_backend, caplog):
    caplog.set_level(logging.DEBUG)
    fake_backend.logged_in = False
    seventy = "meta-llama/Llama-3.1-70B-Instruct"
    q = SecretScript(
        [
            ("text", "Search", "llama-3.1-70b"),
            ("select", "Pick a model", first_matching(seventy)),  # refused: not logged in
            ("text", "Search", "llama-3.1-70b"),
            ("select", "Pick a model", "Log in to Hugging Face"),
            ("password", "Hugging Face token", "hf_wrong_secret"),
            ("text", "Search", "llama-3.1-70b"),
            ("select", "Pick a model", "Log in to Hugging Face"),
            ("password", "Hugging Face token", fake_backend.valid_token),
            ("text", "Search", "llama-3.1-70b"),
            ("select", "Pick a model", first_matching(seventy)),
            ("confirm", "Add another", False),
            ("select", "What now", "Quit"),
        ]
    )
    out = io.StringIO()
    assert plain.run_plain(None, service=fake_backend, prompts=plain.Prompts(q), out=out) == QUIT_CODE
    assert not q.script, q.script
    text = out.getvalue()
    assert f"✖ {seventy} is gated: log in with `modelwiz login`" in text
    assert "✖ " in text and "invalid" in text.lower()  # the wrong token, refused with its fix
    assert "Logged in to Hugging Face as tester; gated models can be picked now" in text
    assert f"  + {seventy}" in text
    assert fake_backend.logged_in
    assert [c for c in fake_backend.calls if c[0] == "log_in"] == [("log_in",), ("log_in",)]
    for token in ("hf_wrong_secret", fake_backend.valid_token):
        assert token not in text and token not in caplog.text
        assert all(token not in str(asked) for asked in q.asked)
    assert ("password", "Hugging Face token (from https://huggingface.co/settings/tokens; not shown):", None) in q.asked


# ---------------------------------------------------------------------------------------------
# A re-run: the home step


def test_plain_rerun_opens_home_launches_and_leaves_with_the_summary(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)

    def launch(choices):
        assert "Relaunch (restart the server with the repository's models)" not in choices
        return "Launch (the same as `modelwiz up`)"

    def then_quit(choices):
        assert "Relaunch (restart the server with the repository's models)" in choices
        return "Quit"

    code, out, _ = run(fake_backend, [("select", "Home", launch), ("select", "Home", then_quit)])
    assert code == 0
    first, second = out.split("== Home")[1:3]
    assert "Server not running: no server for this repository" in first
    assert "  qwen2.5-7b-instruct  (Qwen/Qwen2.5-7B-Instruct)  stopped" in first
    assert "tp 1 · 32,768 tokens · util 0.45 · 3.0 at once" in first  # wizard_flow.plan_line
    assert "qwen2.5-7b-instruct: ready" in out and "the server is up; ready: qwen2.5-7b-instruct" in out
    assert "Server running  modelwiz-triton" in second
    assert "  qwen2.5-7b-instruct  (Qwen/Qwen2.5-7B-Instruct)  ready" in second
    assert ("relaunch",) in fake_backend.calls
    assert "Triton is running as modelwiz-triton:" in out and "modelwiz chat qwen2.5-7b-instruct" in out


def test_plain_home_shows_a_failed_launch_with_its_fix_and_asks_again(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)
    fake_backend.podman_ok = False
    code, out, _ = run(
        fake_backend,
        [("select", "Home", "Launch (the same as `modelwiz up`)"), ("select", "Home", "Quit")],
    )
    assert code == 0
    assert "✖ cannot reach the podman service; start it: systemctl --user enable --now podman.socket" in out
    assert out.rstrip().endswith("modelwiz status    the models and their plans")
    assert "The server is not running: `modelwiz up` starts it." in out


def test_plain_home_resumes_an_unfinished_download_straight_to_the_plan(fake_backend):
    fake_backend.existing = (unfinished(existing_llama_plan()),)

    def resume(choices):
        assert "Launch (the same as `modelwiz up`)" not in choices  # nothing finished to serve
        return "Resume qwen2.5-7b-instruct"

    code, out, _ = run(
        fake_backend,
        [
            ("select", "Home", resume),
            ("select", "What now", "Download and launch"),  # no model search: the plan, at once
            ("text", "Test prompt", ""),
            ("select", "Home", "Quit"),  # the steps come back home
        ],
    )
    assert code == 0
    assert "  qwen2.5-7b-instruct  (Qwen/Qwen2.5-7B-Instruct)  unfinished" in out
    assert [c for c in fake_backend.calls if c[0] == "download"] == [("download", QWEN)]
    assert ("write_repository", ("qwen2.5-7b-instruct",)) in fake_backend.calls
    assert "qwen2.5-7b-instruct-2" not in out
    assert "Triton is running" in out


def test_plain_home_back_from_the_plan_returns_home(fake_backend):
    fake_backend.existing = (unfinished(existing_llama_plan()),)
    code, out, _ = run(
        fake_backend,
        [
            ("select", "Home", "Resume qwen2.5-7b-instruct"),
            ("select", "What now", "Back to models"),  # Back from the step home started: home
            ("select", "Home", "Quit"),
        ],
    )
    assert code == 0
    assert out.count("== Home") == 2 and "== Plan" in out
    assert not any(c[0] == "download" for c in fake_backend.calls)


def test_plain_home_chats_reloads_shows_the_log_stops_and_removes(fake_backend):
    """The home screen's actions on the server and a model, in plain mode too (TERM=dumb, no TTY)."""
    from wizard.service import ModelState

    name = "qwen2.5-7b-instruct"
    fake_backend.existing = (existing_llama_plan(),)
    fake_backend.server_running = True
    fake_backend.serving = {name: ModelState(name, "ready")}
    fake_backend.log = ("I1129 model_lifecycle.cc] successfully loaded 'qwen2.5-7b-instruct'",)
    offered = []

    def pick(action):
        def choose(choices):
            offered.append(list(choices))
            return action

        return choose

    code, out, _ = run(
        fake_backend,
        [
            ("select", "Home", pick("Chat with a model")),
            ("select", "Chat with which model", name),
            ("text", "You (to qwen2.5-7b-instruct", "hello"),
            ("text", "You (to qwen2.5-7b-instruct", ""),
            ("select", "Home", pick("Reload a model (the server loads it again)")),
            ("select", "Reload which model", name),
            ("select", "Home", pick("Show the server log")),
            ("select", "Home", pick("Stop the server (the same as `modelwiz down`)")),
            ("select", "Home", pick("Remove a model")),
            ("select", "Remove which model", name),
            ("confirm", f"Remove {name} from the repository", True),
            ("confirm", "Delete its weights (15.0 GiB) too?", False),
            ("select", "Home", pick("Quit")),
        ],
    )
    assert code == 0
    assert {"Chat with a model", "Reload a model (the server loads it again)", "Show the server log"} <= set(offered[0])
    assert "Triton serves models." in out and ("generate", name, "hello") in fake_backend.calls
    assert ("reload", name) in fake_backend.calls and f"{name} loaded again" in out
    assert "  | I1129 model_lifecycle.cc] successfully loaded 'qwen2.5-7b-instruct'" in out
    assert ("stop",) in fake_backend.calls and "server stopped and removed" in out
    # Stopped: nothing to chat with or reload; the model is still there to remove.
    assert "Chat with a model" not in offered[4] and "Remove a model" in offered[4]
    assert ("remove", name, False) in fake_backend.calls  # the weights stay: the user said no
    assert f"removed {name} from" in out
    assert offered[-1] == ["Add models", "Log in to Hugging Face", "Quit"]  # nothing left to act on


def test_plain_home_shows_a_refused_action_and_stays_home(fake_backend):
    name = "qwen2.5-7b-instruct"
    from wizard.service import ModelState

    fake_backend.existing = (existing_llama_plan(),)
    fake_backend.server_running = True
    fake_backend.serving = {name: ModelState(name, "ready")}
    fake_backend.reload_error = "CUDA out of memory"
    code, out, _ = run(
        fake_backend,
        [
            ("select", "Home", "Reload a model (the server loads it again)"),
            ("select", "Reload which model", name),
            ("select", "Home", "Quit"),
        ],
    )
    assert code == 0
    assert f"✖ {name} did not load: CUDA out of memory; read the server log for the reason" in out
    assert f"  {name}  (Qwen/Qwen2.5-7B-Instruct)  failed: CUDA out of memory" in out.split("== Home")[2]


def test_plain_over_the_real_core_downloads_only_then_a_rerun_opens_home(fake_hub, tmp_path, monkeypatch):
    """Podman away: the plan's "Before launch" rows say so and offer Download only; the model is
    downloaded and the repository written, the run ends saying `modelwiz up`; the next run opens on
    the home step with the model stopped, and its launch fails with the fix, never a traceback."""
    from wizard.core_service import CoreService

    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/no-podman.sock")
    repo = tmp_path / "repo"
    code, out, _ = run(
        CoreService(spec="L4", repository=repo),
        [
            ("text", "Search", "tiny"),
            ("select", "Pick a model", first_matching("org/tiny  (")),
            ("confirm", "Add another", False),
            ("select", "What now", "Download only"),
        ],
    )
    assert code == 0
    assert "  Before launch:\n  ✖ Podman:" in out
    assert f"Download only: the models are in {repo}" in out
    assert out.rstrip().endswith("modelwiz status    the models and their plans")
    assert (repo / "tiny" / "config.pbtxt").is_file()

    code, out, _ = run(
        CoreService(spec="L4", repository=repo),
        [("select", "Home", "Launch (the same as `modelwiz up`)"), ("select", "Home", "Quit")],
    )
    assert code == 0
    assert "  tiny  (org/tiny)  stopped" in out
    assert "✖ cannot reach the podman service" in out and "Traceback" not in out
    assert out.count("== Home") == 2  # asked again after the failed launch
    assert "The server is not running: `modelwiz up` starts it." in out
