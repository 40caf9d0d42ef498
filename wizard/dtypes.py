"""Bytes per element of each safetensors dtype: what the Hub's parameter counts weigh (`wizard.hub`)
and what a local checkpoint's tensors weigh (`wizard.model_meta`)."""

from __future__ import annotations

# Bytes per element of each safetensors dtype (huggingface.js and the safetensors spec).
DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E4M3FN": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "E8M0": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F4": 0.5,
    "FP4": 0.5,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
}
