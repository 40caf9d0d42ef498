"""Which keys `1/model.json` may hold for the vLLM inside a given Triton image.

The Triton vLLM backend runs `AsyncEngineArgs(**model_json)`, so a key that vLLM version does not
know makes the model fail to load. The allowed keys per vLLM release are shipped in
assets/data/vllm-engine-args/<version>.txt (read from the released wheels). `disable_log_requests`
is never written, even for versions that still accept it: it is deprecated and removed later.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from wizard.errors import ModelwizError, UsageError
from wizard.images import version_tuple
from wizard.paths import data_file

# Keys modelwiz never writes (obsolete; the backend reads enable_log_requests instead).
FORBIDDEN_KEYS = frozenset({"disable_log_requests"})


class EngineArgsError(ModelwizError):
    """model.json holds keys the image's vLLM does not accept."""


@functools.lru_cache(maxsize=1)
def known_versions() -> tuple[str, ...]:
    """The vLLM releases we have engine-arg lists for, oldest first."""
    folder = data_file("vllm-engine-args")
    versions = [p.stem for p in folder.glob("*.txt")]
    return tuple(sorted(versions, key=version_tuple))


def resolve_version(vllm_release: str) -> str:
    """The engine-args list to use for `vllm_release` (e.g. `0.24.0`).

    An exact match, else the newest known version not newer than it (vLLM removes keys only after
    a deprecation period, so an older list is a safe subset), else refuse.
    """
    versions = known_versions()
    if vllm_release in versions:
        return vllm_release
    wanted = version_tuple(vllm_release)
    if not wanted:
        raise UsageError(f"cannot read the vLLM version {vllm_release!r}")
    older = [v for v in versions if version_tuple(v) <= wanted]
    if not older:
        raise UsageError(
            f"vLLM {vllm_release} is older than any version modelwiz can write model.json for "
            f"(oldest known: {versions[0]})",
            hint="pick a newer Triton vLLM image (--image), e.g. 25.03-vllm-python-py3 or later",
        )
    return older[-1]


@functools.cache
def allowed_keys(version: str) -> frozenset[str]:
    """The model.json keys vLLM `version` accepts (a version from `known_versions()`)."""
    path = data_file("vllm-engine-args", f"{version}.txt")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelwizError(
            f"no engine-argument list for vLLM {version}",
            hint=f"use one of {', '.join(known_versions())} (see resolve_version)",
        ) from None
    keys = {line.strip() for line in text.splitlines()}
    return frozenset(k for k in keys if k and not k.startswith("#")) - FORBIDDEN_KEYS


def check_keys(engine_args: Mapping[str, object], version: str) -> None:
    """Raise EngineArgsError unless every key is accepted by vLLM `version`."""
    allowed = allowed_keys(version)
    forbidden = sorted(k for k in engine_args if k in FORBIDDEN_KEYS)
    if forbidden:
        raise EngineArgsError(
            f"model.json must not contain {', '.join(forbidden)} (obsolete in vLLM)",
            hint="drop it; request logging is `enable_log_requests` in current vLLM",
        )
    unknown = sorted(k for k in engine_args if k not in allowed)
    if unknown:
        raise EngineArgsError(
            f"vLLM {version} does not accept {', '.join(repr(k) for k in unknown)} in model.json "
            "(the model would fail to load)",
            hint="remove those keys, or use a Triton image with a newer vLLM",
        )
