# modelwiz: download one model's weights into the model repository volume (Kubernetes init container).
# argv: REPO_ID REVISION MODEL_DIR WEIGHTS_DIR [FILE ...]  (no FILE: what vLLM needs, by the rules below)
# The token, if any, comes from $HF_TOKEN (a Secret); it is never printed.
import os
import sys
from pathlib import Path

repo_id, revision, model_dir, weights = sys.argv[1:5]
files = sys.argv[5:]
model_dir = Path(model_dir)
# Mount points for the ConfigMap files Triton gets: they must exist before the read-only
# volume is mounted under them.
(model_dir / "1").mkdir(parents=True, exist_ok=True)
for placeholder in (model_dir / "config.pbtxt", model_dir / "1" / "model.json"):
    placeholder.touch(exist_ok=True)
dest = model_dir / weights
marker = dest / ".modelwiz-download"
if marker.is_file() and marker.read_text().strip() == revision:
    print(f"{repo_id}@{revision}: already in {dest}", flush=True)
    sys.exit(0)
from huggingface_hub import HfApi, snapshot_download

ignore = None
if not files:
    names = HfApi().list_repo_files(repo_id, revision=revision)
    if any(name.endswith(".safetensors") for name in names):
        ignore = ["*.bin", "*.pth", "*.pt", "original/*", "consolidated.*"]
print(f"downloading {repo_id}@{revision} into {dest}", flush=True)
snapshot_download(
    repo_id=repo_id,
    revision=revision,
    local_dir=str(dest),
    allow_patterns=files or None,
    ignore_patterns=ignore,
)
partial = marker.with_name(marker.name + ".tmp")
partial.write_text(revision + "\n")
os.replace(partial, marker)
print(f"{repo_id}@{revision}: complete", flush=True)
