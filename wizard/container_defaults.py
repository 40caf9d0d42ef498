"""The server container's fixed names, shared by what describes the container (`wizard.container`)
and what only refers to it: the manifest (where the repository is mounted), the machine checks
(CDI device names) and the wizard (the container to look for). Kept apart so that those can name
them without loading the container spec and its OpenAI frontend (the wizard's first frame)."""

from __future__ import annotations

DEFAULT_NAME = "modelwiz-triton"
# Where the repository appears inside the container: the path the original setup notes use, and
# what the manifest records by default (model.json paths are written against it).
DEFAULT_MOUNT_POINT = "/opt/app-root/mnt/model_repository"
CDI_KIND = "nvidia.com/gpu"
ALL_DEVICES = "all"
