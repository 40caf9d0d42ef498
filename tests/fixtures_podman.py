"""Real podman for the launcher tests: a private service, a stand-in Triton image, a CDI spec.

- `podman_service`: `podman system service --time=0` on a temporary socket, with a containers.conf
  the tests own, started in its own session and ended by its pid. runc (crun 1.8 fails on this
  sandbox's cgroups), and default ulimits lowered to what the sandbox grants, as an admin does on
  a host whose hard limits are below podman's built-in 1048576: containers modelwiz does not
  create (`kube play`) need them. modelwiz's own containers never rely on them: naming any
  ulimit drops them, so `up` names nofile/nproc itself (the tests use its real limits).
- `standin_image`: `localhost/tritonserver:test`, imported offline from busybox-static plus the
  scripts in tests/standin/; built once and cached by the hash of its content. `frontend_image`
  tags it as a 26.08 image, which modelwiz runs with Triton's OpenAI frontend (the stand-in of
  its main.py is tests/standin/openai_main.sh, run by a `python3` that runs shell scripts).
- `cdi_gpus`: a CDI spec whose nvidia.com/gpu devices 0, 1 and all are /dev/null on the host
  (podman 4.3 only reads /etc/cdi and /var/run/cdi). Shared by concurrent sessions through a
  reference count; the last one out removes it.

Podman tests are skipped only when podman is absent and $CI is unset; in CI they fail instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).parent / "standin"
STANDIN_TAG = "localhost/tritonserver:test"
# The stand-in under a release tag whose image has the OpenAI frontend (26.04+: explicit model control).
FRONTEND_RELEASE = "26.08"
FRONTEND_MAIN = "opt/tritonserver/python/openai/openai_frontend/main.py"
CDI_DIR = Path("/etc/cdi")
CDI_FILE = CDI_DIR / "modelwiz-test-standin.yaml"
CDI_USERS = Path("/run/modelwiz-test-cdi")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=1000:1000"]
[engine]
runtime = "runc"
"""

CDI_SPEC = """\
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
      hostPath: /dev/null
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
    - path: /dev/nvidia1
      hostPath: /dev/null
containerEdits:
  env:
  - NVIDIA_STANDIN_CDI=1
"""


def pytest_collection_modifyitems(config, items):
    if shutil.which("podman") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="podman is not installed (these tests run in CI)")
    for item in items:
        if "podman" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class PodmanService:
    url: str
    env: dict[str, str]  # environment for podman CLI calls against the same storage
    name_prefix: str  # every container a test creates starts with this

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:  # say what podman said, not only its exit code
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        return done

    def container_name(self) -> str:
        return f"{self.name_prefix}{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_ulimits():
    """The limits `modelwiz up` asks for on this host (the real code path: its hard limits)."""
    from wizard.launch_inputs import HostFacts

    return HostFacts.local().ulimits


@pytest.fixture(scope="session")
def podman_service(tmp_path_factory):
    if not shutil.which("podman"):
        pytest.fail("podman is required in CI (install it in .ci/run)")
    base = tmp_path_factory.mktemp("podman")
    conf = base / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    sock = base / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    env.pop("CONTAINER_HOST", None)
    log = (base / "service.log").open("wb")
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"podman system service did not start: {(base / 'service.log').read_text()[-2000:]}")
        time.sleep(0.05)
    service = PodmanService(url=f"unix://{sock}", env=env, name_prefix=f"mwtest-{os.getpid()}-")
    try:
        yield service
    finally:
        names = service.podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        mine = [n for n in names if n.startswith(service.name_prefix)]
        if mine:
            service.podman("rm", "-f", "-t", "0", *mine, check=False)
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def podman_client(podman_service):
    from podman import PodmanClient

    client = PodmanClient(base_url=podman_service.url, timeout=120)
    yield client
    client.close()


def _busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and b"ELF" in path.read_bytes()[:4]:
            return path
    pytest.fail("busybox-static is required (apt-get install busybox-static)")


def _rootfs_tar(busybox: Path) -> bytes:
    """bin/busybox + applet links, the stand-in scripts, an empty /tmp; deterministic bytes."""
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(
            name: str, *, data: bytes | None = None, mode: int = 0o755, link: str | None = None, folder: bool = False
        ) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            if folder:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))

        frontend_dirs = tuple("/".join(FRONTEND_MAIN.split("/")[:i]) for i in range(1, FRONTEND_MAIN.count("/") + 1))
        for folder in ("bin", "usr", "usr/bin", "standin", "tmp", "dev", "proc", "sys", "etc", *frontend_dirs):
            add(folder, folder=True, mode=0o1777 if folder == "tmp" else 0o755)
        add("bin/busybox", data=busybox.read_bytes())
        for applet in sorted(set(applets)):
            if applet != "busybox":
                add(f"bin/{applet}", link="busybox")
        add("usr/bin/tritonserver", data=(STANDIN_DIR / "tritonserver").read_bytes())
        add("standin/handler.sh", data=(STANDIN_DIR / "handler.sh").read_bytes())
        add("usr/bin/python3", data=(STANDIN_DIR / "python3").read_bytes())
        add(FRONTEND_MAIN, data=(STANDIN_DIR / "openai_main.sh").read_bytes())
        add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644)
    return buf.getvalue()


@pytest.fixture(scope="session")
def standin_build(podman_service, tmp_path_factory) -> str:
    """The stand-in image under a tag named by its content (no other session retags it)."""
    tar = _rootfs_tar(_busybox())
    digest = hashlib.sha256(tar).hexdigest()[:16]
    cached = f"localhost/modelwiz-standin:{digest}"
    if podman_service.podman("image", "exists", cached, check=False).returncode != 0:
        path = tmp_path_factory.mktemp("standin") / "rootfs.tar"
        path.write_bytes(tar)
        podman_service.podman(
            "import", "--change", "ENV=PATH=/usr/bin:/bin", "--change", 'CMD=["tritonserver"]', str(path), cached
        )
    return cached


@pytest.fixture(scope="session")
def standin_image(podman_service, standin_build):
    podman_service.podman("tag", standin_build, STANDIN_TAG)
    return STANDIN_TAG


def frontend_tag(image: str) -> str:
    """`image` (`repo:digest`) under a 26.08 release tag, which modelwiz runs with Triton's OpenAI
    frontend; the digest stays in the name, so concurrent sessions never retag each other's."""
    repo, _, digest = image.rpartition(":")
    return f"{repo}-{digest}:{FRONTEND_RELEASE}-vllm-python-py3"


@pytest.fixture(scope="session")
def frontend_image(podman_service, standin_build):
    """The stand-in image under a tag that has Triton's OpenAI frontend (26.04+)."""
    tag = frontend_tag(standin_build)
    podman_service.podman("tag", standin_build, tag)
    return tag


@contextmanager
def _cdi_lock():
    CDI_USERS.mkdir(parents=True, exist_ok=True)
    with open(CDI_USERS / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def cdi_gpus():
    """The CDI dirs to pass to the preflight; nvidia.com/gpu=0, =1 and =all exist there."""
    me = CDI_USERS / str(os.getpid())
    try:
        with _cdi_lock():
            CDI_DIR.mkdir(parents=True, exist_ok=True)
            tmp = CDI_FILE.with_suffix(".tmp")
            tmp.write_text(CDI_SPEC)
            os.replace(tmp, CDI_FILE)
            me.touch()
    except PermissionError:
        pytest.fail(f"the podman tests need to write {CDI_FILE} (podman 4.3 reads only /etc/cdi and /var/run/cdi)")
    yield (CDI_DIR,)
    with _cdi_lock():
        me.unlink(missing_ok=True)
        users = [p for p in CDI_USERS.iterdir() if p.name.isdigit()]
        for stale in [p for p in users if not _alive(int(p.name))]:
            stale.unlink(missing_ok=True)  # a session that crashed before its teardown
        if not any(_alive(int(p.name)) for p in users):
            CDI_FILE.unlink(missing_ok=True)
