"""The built-in catalog of popular, known-good models (assets/catalog/models.json).

It fills the wizard's model list before the Hub answers, and stands in for the Hub's popular list
when the Hub cannot be reached. Each entry carries what the list shows (parameters, weights size,
gated) and the config.json fields the planner reads. `tools/refresh_catalog.py` rewrites the file
from the Hub (run by a maintainer, with the network).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wizard.errors import ModelwizError
from wizard.paths import assets_dir

CATALOG_VERSION = 1

# The config.json fields the planner reads (wizard.model_meta.ModelMeta.from_config); the refresh
# script keeps exactly these.
PLANNER_FIELDS: tuple[str, ...] = (
    "architectures",
    "model_type",
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "rope_scaling",
    "sliding_window",
    "use_sliding_window",
    "torch_dtype",
    "num_local_experts",
    "num_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "kv_lora_rank",
    "qk_rope_head_dim",
)


@dataclass(frozen=True)
class CatalogModel:
    repo_id: str
    parameters: int
    weights_bytes: int
    gated: bool | Literal["auto", "manual"] = False
    config: Mapping[str, Any] = field(default_factory=dict)


def catalog_path() -> Path:
    return assets_dir() / "catalog" / "models.json"


def parse_catalog(text: str, where: Path) -> tuple[CatalogModel, ...]:
    """The catalog's models, in the file's order (most popular first)."""
    try:
        data = json.loads(text)
        if data.get("version") != CATALOG_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {CATALOG_VERSION}")
        return tuple(
            CatalogModel(
                repo_id=str(m["repo_id"]),
                parameters=int(m["parameters"]),
                weights_bytes=int(m["weights_bytes"]),
                gated=m.get("gated", False),
                config={k: v for k, v in (m.get("config") or {}).items() if k in PLANNER_FIELDS},
            )
            for m in data["models"]
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelwizError(
            f"the built-in model catalog {where} cannot be read: {error}",
            hint="reinstall modelwiz, or regenerate it with tools/refresh_catalog.py",
        ) from None


@functools.cache
def load_catalog() -> tuple[CatalogModel, ...]:
    path = catalog_path()
    return parse_catalog(path.read_text(encoding="utf-8"), path)
