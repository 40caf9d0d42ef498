"""Triton model names: derived from a Hub repo id, checked so they can never escape the repository."""

from __future__ import annotations

import re

from wizard.errors import UsageError

# Triton takes the folder name as the model name; keep to what every tool (URLs, shells, k8s
# ConfigMap keys) handles without quoting.
_VALID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")  # fullmatch: `$` would accept a final newline
_RESERVED = {".", "..", "1"}


def derive_name(source: str) -> str:
    """`meta-llama/Llama-2-7b-hf` -> `llama-2-7b-hf`; `/data/My Model/` -> `my-model`."""
    base = source.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._")
    return name[:128] or "model"


def check_name(name: str) -> str:
    """Return `name` if it is a safe, valid Triton model name; else raise UsageError."""
    if name in _RESERVED or not _VALID.fullmatch(name) or ".." in name:
        raise UsageError(
            f"{name!r} is not a usable model name",
            hint="use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def unique_name(name: str, taken: set[str] | frozenset[str]) -> str:
    """`name`, or `name-2`, `name-3`, ... whichever is free."""
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"
