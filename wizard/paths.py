"""Every path modelwiz reads or writes outside a model repository comes from here.

Tests redirect these through the environment (XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME, HF_HOME) or by
monkeypatching the functions.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

APP_NAME = "modelwiz"


def assets_dir() -> Path:
    """`wizard/assets` in an installed wheel; the checkout's `assets/` in an editable install."""
    packaged = files("wizard") / "assets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "assets"


def data_file(*parts: str) -> Path:
    """A file under assets/data (the facts modelwiz ships: image table, vLLM engine args)."""
    return assets_dir().joinpath("data", *parts)


def config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP_NAME)


def config_file() -> Path:
    return config_dir() / "config.toml"


def data_dir() -> Path:
    """What modelwiz learns on this machine (the launches' calibration)."""
    from platformdirs import user_data_path

    return user_data_path(APP_NAME)


def cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME)
