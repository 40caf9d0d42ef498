"""Refresh the built-in model catalog (assets/catalog/models.json) from the Hugging Face Hub.

Run by a maintainer, with the network: `python tools/refresh_catalog.py [REPO_ID ...]`.
With no ids it refreshes the models already in the catalog, in their order. For each model it
reads the Hub's safetensors parameter counts (`HfApi.model_info(expand=["safetensors", "gated"])`)
and its config.json, keeps the fields the planner reads (`wizard.catalog.PLANNER_FIELDS`), and
writes the file atomically. A model that cannot be read stops the run (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wizard.catalog import CATALOG_VERSION, PLANNER_FIELDS, catalog_path, load_catalog  # noqa: E402
from wizard.fsutil import atomic_write_text  # noqa: E402

# Bytes per parameter for the safetensors dtypes the Hub reports.
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "I32": 4}

ABOUT = (
    "Popular, known-good models for the model list when the Hub is slow or unreachable. "
    "`config` holds the config.json fields the planner reads, copied from each model's public config.json "
    "(config_source); `parameters` is the checkpoint's safetensors parameter count and `weights_bytes` "
    "those parameters times their dtype's size. Refresh with `python tools/refresh_catalog.py` (needs the network)."
)


def entry(repo_id: str) -> dict[str, Any]:
    from huggingface_hub import HfApi, hf_hub_download

    info = HfApi().model_info(repo_id, expand=["safetensors", "gated"])
    st = info.safetensors
    if st is None or not st.parameters:
        raise SystemExit(f"{repo_id}: the Hub has no safetensors parameter counts; leave it out")
    unknown = set(st.parameters) - set(DTYPE_BYTES)
    if unknown:
        raise SystemExit(f"{repo_id}: unknown dtypes {sorted(unknown)}; add them to DTYPE_BYTES")
    config = json.loads(Path(hf_hub_download(repo_id, "config.json", revision=info.sha)).read_text())
    text = config.get("text_config") or config  # vision-language models keep the LM's fields here
    return {
        "repo_id": repo_id,
        "parameters": int(st.total),
        "weights_bytes": sum(DTYPE_BYTES[k] * int(v) for k, v in st.parameters.items()),
        "gated": info.gated or False,
        "config_source": f"https://huggingface.co/{repo_id}/blob/{info.sha}/config.json",
        "config": {k: text[k] for k in PLANNER_FIELDS if k in text},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo_ids", nargs="*", help="the models, most popular first (default: the catalog's)")
    args = parser.parse_args()
    ids = args.repo_ids or [m.repo_id for m in load_catalog()]
    models = [entry(repo_id) for repo_id in ids]
    doc = {"_about": ABOUT, "version": CATALOG_VERSION, "models": models}
    atomic_write_text(catalog_path(), json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(models)} models to {catalog_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
