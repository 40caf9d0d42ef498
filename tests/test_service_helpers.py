"""The pure helpers both UIs share (wizard.service, wizard.textbar, wizard.wizard_flow)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wizard.errors import ModelwizError, UsageError
from wizard.gpus import describe
from wizard.service import Check, blocking, quick_fit
from wizard.textbar import plain_bar, split_widths
from wizard.units import GiB
from wizard.wizard_flow import check_stage, parse_context_length, step_after, step_before


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=6), st.integers(1, 200))
def test_split_widths_fills_the_bar_exactly(sizes, width):
    cells = split_widths(sizes, width)
    assert sum(cells) == (width if sum(sizes) else 0)
    assert all(c >= 0 for c in cells)


def test_plain_bar_shows_each_part():
    bar = plain_bar((("weights", 30), ("kv_cache", 50), ("overhead", 1), ("other_processes", 0), ("free", 19)), 20)
    assert len(bar) == 20 and bar.startswith("WWWWWW") and "o" in bar and "x" not in bar and bar.endswith(".")


def test_quick_fit_grades_by_size():
    inv = describe("2xH100-80GB")
    assert quick_fit(15 * GiB, inv)[0] == "fits"
    assert quick_fit(100 * GiB, inv) == ("split", "needs 2 GPUs (tensor parallel 2)")
    assert quick_fit(400 * GiB, inv)[0] == "no"
    assert quick_fit(None, inv) == ("unknown", "")


def test_blocking_checks_by_step():
    podman = Check("podman", "Podman", "fail", "down", "start it", "launch")
    login = Check("hf-login", "Hugging Face", "warn", "not logged in")
    assert blocking((podman, login), "download") == ()
    assert blocking((podman, login), "launch") == (podman,)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("8k", 8192), ("32K", 32768), ("131072", 131072), ("128k", 131072), (" 8_192 ", 8192), ("", None)],
)
def test_context_length_is_read_the_same_everywhere(text, tokens):
    assert parse_context_length(text) == tokens


@pytest.mark.parametrize("text", ["8m", "k", "-5", "0", "1.5k", "lots"])
def test_a_bad_context_length_says_what_to_write(text):
    with pytest.raises(UsageError, match="is not a context length") as info:
        parse_context_length(text)
    assert info.value.hint == "write a whole number of tokens: 8192, 8k, 32K or 131072"


def test_back_rules():
    assert step_before("machine") is None  # leaving the wizard (it asks first)
    assert step_before("plan") == "models"
    assert step_before("launch") == "plan"  # the downloads are done
    assert step_after("plan") == "download" and step_after("done") is None


def test_failed_checks_block_the_launch_with_the_fix():
    podman = Check("podman", "Podman", "fail", "cannot reach the podman service", "start it", "launch")
    login = Check("hf-login", "Hugging Face", "warn", "not logged in")
    check_stage((login,), "launch")
    with pytest.raises(ModelwizError, match="cannot launch: Podman: cannot reach the podman service") as info:
        check_stage((podman, login), "launch")
    assert info.value.hint == "start it"
    check_stage((podman, login), "download")  # podman is needed only to launch
