"""Byte sizes: parse what people type, print what people read. One place for both."""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024**2
GiB = 1024**3
TiB = 1024**4

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_FACTORS = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": KiB,
    "kib": KiB,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": MiB,
    "mib": MiB,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": GiB,
    "gib": GiB,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": TiB,
    "tib": TiB,
}


def parse_size(text: str) -> int:
    """`24GiB` -> 25769803776, `80GB` -> 80e9, `512MiB`, `1.5TiB`. Raises ValueError."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (write it like 24GiB, 80GB or 512MiB)")
    number, unit = match.groups()
    factor = _FACTORS[(unit or "b").lower()]
    return int(float(number) * factor)


def format_bytes(n: int | float | None, *, precision: int = 1) -> str:
    """Binary units, as nvidia-smi and vLLM's logs use them: 12.5 GiB, 512.0 MiB."""
    if n is None:
        return "?"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= factor:
            return f"{sign}{value / factor:.{precision}f} {unit}"
    return f"{sign}{int(value)} B"


def format_rate(bytes_per_second: float | None) -> str:
    return "?" if bytes_per_second is None else f"{format_bytes(bytes_per_second)}/s"


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`; `?` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
