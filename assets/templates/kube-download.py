# modelwiz: put one model into the model repository volume (Kubernetes init container).
# argv: REPO_ID REVISION MODEL_DIR WEIGHTS_DIR CONFIG_DIR FILE...
#   downloads FILE... (the files `modelwiz add` chose and downloaded on the workstation) at
#   REVISION into MODEL_DIR/WEIGHTS_DIR, then copies the model's ConfigMap (CONFIG_DIR:
#   config.pbtxt, model.json) to MODEL_DIR/config.pbtxt and MODEL_DIR/1/model.json, so Triton
#   never sees a model whose weights are not complete.
# The token, if any, comes from $HF_TOKEN (a Secret); it is never printed.
import os
import shutil
import sys
from pathlib import Path

repo_id, revision, model_dir, weights, config_dir = sys.argv[1:6]
files = sys.argv[6:]
if not files:
    sys.exit("modelwiz download: no files to download were given")
model_dir, config_dir = Path(model_dir), Path(config_dir)
dest = model_dir / weights
marker = dest / ".modelwiz-download"
if marker.is_file() and marker.read_text().strip() == revision:
    print(f"{repo_id}@{revision}: already in {dest}", flush=True)
else:
    from huggingface_hub import snapshot_download

    print(f"downloading {repo_id}@{revision} into {dest}", flush=True)
    snapshot_download(
        repo_id=repo_id,
        revision=revision,
        local_dir=str(dest),
        allow_patterns=files,
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
