"""Repository models for the chat tests: a weights folder with a real model's tokenizer files, as
the container sees it under MOUNT."""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
MOUNT = "/models"


def write_model(root: Path, name: str, template: str | None) -> Path:
    """A repository model whose 1/model.json loads its weights folder, with `template`'s tokenizer
    files (None: a base model without a chat template). Returns the weights folder."""
    weights = root / name / "weights"
    weights.mkdir(parents=True)
    (root / name / "1").mkdir()
    (root / name / "config.pbtxt").write_text('backend: "vllm"\n')
    (root / name / "1" / "model.json").write_text(json.dumps({"model": f"{MOUNT}/{name}/weights"}))
    config = (TEMPLATES / template / "tokenizer_config.json").read_text() if template else '{"model_max_length": 8}'
    (weights / "tokenizer_config.json").write_text(config)
    return weights
