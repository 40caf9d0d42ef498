"""Which keys `1/model.json` may hold for the vLLM inside a given Triton image.

The Triton vLLM backend runs `AsyncEngineArgs(**model_json)`, so a key that vLLM version does not
know makes the model fail to load. The allowed keys per vLLM release are shipped in
assets/data/vllm-engine-args/<version>.txt (read from the released wheels). Functions here take a
vLLM release as the image carries it (`0.10.2`) or a listed version; a release without its own list
is checked against the newest list not newer than it (`resolve_version`).

Request logging: vLLM up to 0.9 logs every prompt unless `disable_log_requests` is set (it has no
`enable_log_requests`); from 0.10 logging is off by default and `disable_log_requests` is gone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from wizard.errors import ModelwizError, UsageError
from wizard.images import version_tuple
from wizard.paths import data_file

DISABLE_LOG_REQUESTS = "disable_log_requests"
ENABLE_LOG_REQUESTS = "enable_log_requests"


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
            hint="pick a newer Triton vLLM image (--image), e.g. 25.04-vllm-python-py3 or later",
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
    return frozenset(k for k in keys if k and not k.startswith("#"))


def request_logging_off(vllm_release: str) -> dict[str, bool]:
    """The model.json entry that keeps prompts out of the Triton log on this vLLM (empty when
    logging is already off by default)."""
    allowed = allowed_keys(resolve_version(vllm_release))
    if DISABLE_LOG_REQUESTS in allowed and ENABLE_LOG_REQUESTS not in allowed:
        return {DISABLE_LOG_REQUESTS: True}
    return {}


def check_keys(engine_args: Mapping[str, object], version: str) -> None:
    """Raise EngineArgsError unless every key is accepted by vLLM `version` (a release or a
    listed version)."""
    allowed = allowed_keys(resolve_version(version))
    unknown = sorted(k for k in engine_args if k not in allowed)
    if unknown:
        raise EngineArgsError(
            f"vLLM {version} does not accept {', '.join(repr(k) for k in unknown)} in model.json "
            "(the model would fail to load)",
            hint="remove those keys, or use a Triton image with a newer vLLM",
        )
