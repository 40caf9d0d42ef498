# modelwiz: put one model into the model repository volume (Kubernetes init container).
# argv: REPO_ID REVISION MODEL_DIR WEIGHTS_DIR CONFIG_DIR [FILE ...]
#   downloads the weights at REVISION into MODEL_DIR/WEIGHTS_DIR (FILE...: exactly those files;
#   none: what vLLM needs, by the rules below), then copies the model's ConfigMap (CONFIG_DIR:
#   config.pbtxt, model.json) to MODEL_DIR/config.pbtxt and MODEL_DIR/1/model.json, so Triton
#   never sees a model whose weights are not complete.
# The token, if any, comes from $HF_TOKEN (a Secret); it is never printed.
import os
import shutil
import sys
from pathlib import Path

repo_id, revision, model_dir, weights, config_dir = sys.argv[1:6]
files = sys.argv[6:]
model_dir, config_dir = Path(model_dir), Path(config_dir)
dest = model_dir / weights
marker = dest / ".modelwiz-download"
if marker.is_file() and marker.read_text().strip() == revision:
    print(f"{repo_id}@{revision}: already in {dest}", flush=True)
else:
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
for name, target in (("config.pbtxt", model_dir / "config.pbtxt"), ("model.json", model_dir / "1" / "model.json")):
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".modelwiz-tmp")
    shutil.copyfile(config_dir / name, partial)
    os.replace(partial, target)
print(f"{model_dir.name}: config.pbtxt and 1/model.json in place", flush=True)
