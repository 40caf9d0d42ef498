"""The pure helpers both UIs share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wizard.gpus import describe
from wizard.service import Check, blocking, quick_fit
from wizard.textbar import plain_bar, split_widths
from wizard.units import GiB


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
