"""Shared test setup: every test runs with its own config, cache and Hugging Face home.

Area fixtures live in `tests/fixtures_<area>.py` modules and are registered below, so test files
can use them by name.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_nvml", "tests.fixtures_hub", "tests.fixtures_podman", "tests.fixtures_screens"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_OIDC_RESOURCE",
        "MODELWIZ_GPUS",
        "MODEL_REPOSITORY",
        "CONTAINER_HOST",
        "DOCKER_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    return home
