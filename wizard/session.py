"""One `modelwiz add`, as `modelwiz add`, the plain wizard and the Textual wizard all run it.

    session = AddSession(root, inventory)                # the machine, read once
    with session.locked():                               # one change to the repository at a time
        proposal = session.propose(requests)             # names (resume rule), joint plan, commits
        session.fetch(proposal, name, ...)               # optional: one model's weights first
        result = session.write(proposal, ...)            # download what is left, write every file
    serving = session.launch(result.names, result.rewritten, options, reporter)

The session holds what does not change during one add: the repository's location, the GPU
inventory (and so the driver version), the models the running server holds on the GPUs (asked of
podman once) and every Hub lookup (one `model_info` per model: the metadata the planner reads and
the download plan come from the same lookup, so the commit planned is the commit downloaded).
What the user decides (the proposal, the result) is passed in and returned, never kept here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from wizard.add_flow import (
    AddEvent,
    AddProposal,
    AddRequest,
    AddResult,
    Downloader,
    EventCallback,
    HubReader,
    ModelReader,
    Planner,
    execute_add,
    ignore_event,
    prepare_add,
)
from wizard.download import download_model
from wizard.errors import UsageError
from wizard.gpus import GpuInventory
from wizard.launch_inputs import launch_inputs_for
from wizard.planner import plan_models
from wizard.progress import ProgressCallback, ignore_progress
from wizard.repository import Repository, repository_lock
from wizard.serve import Reporter, ServeOptions, Serving, models_holding_gpu_memory, start_server


class AddSession:
    """One add into the repository at `root` on the GPUs of `inventory` (see the module docstring).

    `fill` (the default) gives each used GPU's leftover memory to its models as KV cache, less
    `reserve_bytes` kept free per GPU for models added later.
    `planner`, `reader` and `downloader` default to the real ones (the planner, a HubReader, the
    Hub download); `on_event` hears each step. Thread-safe for the wizard's plan workers."""

    def __init__(
        self,
        root: Path,
        inventory: GpuInventory,
        *,
        image_ref: str | None = None,
        fill: bool = True,
        reserve_bytes: int = 0,
        planner: Planner = plan_models,
        reader: ModelReader | None = None,
        downloader: Downloader = download_model,
        on_event: EventCallback = ignore_event,
    ) -> None:
        self.root = Path(root)
        self.inventory = inventory
        self.image_ref = image_ref
        self.fill = fill
        self.reserve_bytes = reserve_bytes
        self.planner = planner
        self.reader: ModelReader = reader if reader is not None else HubReader()
        self.downloader = downloader
        self.on_event = on_event
        self._repo: Repository | None = None
        self._running: frozenset[str] | None = None
        self._guard = threading.Lock()

    # -- the machine, read once -------------------------------------------------------------------
    @property
    def repo(self) -> Repository:
        """The repository, opened once (and again, from disk, each time the lock is taken)."""
        with self._guard:
            if self._repo is None:
                self._repo = Repository.open(self.root, create=True)
            return self._repo

    @contextmanager
    def locked(self) -> Iterator[Repository]:
        """Hold the repository for one change; what it holds is read under the lock."""
        with repository_lock(self.root):
            repo = Repository.open(self.root, create=True)
            with self._guard:
                self._repo = repo
            yield repo

    @property
    def running(self) -> frozenset[str]:
        """The repository's models that hold GPU memory now (podman is asked once per session)."""
        with self._guard:
            running = self._running
        if running is None:
            running = models_holding_gpu_memory(self.root, self.inventory)
            with self._guard:
                self._running = running
        return running

    # -- the steps --------------------------------------------------------------------------------
    def propose(
        self,
        requests: Sequence[AddRequest],
        *,
        refuse: bool = True,
        check_disk: bool = True,
        reserve_bytes: int | None = None,
    ) -> AddProposal:
        """Name, plan jointly with the repository's models, and pin each Hub model's commit.

        `refuse=False`: a proposal that does not fit is returned (for a UI that lets the user
        change it) instead of raised; `check_disk=False`: no refusal for disk space;
        `reserve_bytes`: memory to keep free per GPU for this proposal (None: the session's)."""
        return prepare_add(
            self.repo,
            requests,
            inventory=self.inventory,
            image_ref=self.image_ref,
            planner=self.planner,
            reader=self.reader,
            on_event=self.on_event,
            refuse=refuse,
            check_disk=check_disk,
            fill=self.fill,
            reserve_bytes=self.reserve_bytes if reserve_bytes is None else reserve_bytes,
            existing_running=self.running,
        )

    def fetch(
        self,
        proposal: AddProposal,
        name: str,
        *,
        on_progress: ProgressCallback = ignore_progress,
        cancel: threading.Event | None = None,
    ) -> AddResult:
        """Record the model `name` of the proposal, download its planned commit and write its
        files (with the proposal's budget changes, applied before the first byte moves)."""
        one = tuple(n for n in proposal.new if n.plan.name == name)
        if not one:
            raise UsageError(f"{name!r} is not a model this add plans", hint="plan it first")
        return self.write(replace(proposal, new=one), on_progress=on_progress, cancel=cancel)

    def write(
        self,
        proposal: AddProposal,
        *,
        on_progress: ProgressCallback = ignore_progress,
        cancel: threading.Event | None = None,
    ) -> AddResult:
        """Record, download what is not fetched yet, and write every file of the joint plan."""
        return execute_add(
            self.repo,
            proposal,
            downloader=self.downloader,
            on_event=self.on_event,
            on_progress=on_progress,
            cancel=cancel,
        )

    def launch(self, names: Sequence[str], reload: Sequence[str], options: ServeOptions, reporter: Reporter) -> Serving:
        """Start the server, or make the running one load what is new (`names`, the models added).

        `reload`: models already there whose files this add rewrote (`AddResult.rewritten`); a
        running server loads them again. A change that needs a restart is put to `reporter.confirm`."""
        repo = self.repo
        self.on_event(AddEvent("launch", f"starting or updating the Triton server for {', '.join(names)}"))
        return start_server(
            repo.root,
            driver=self.inventory.driver_version,
            options=options,
            reporter=reporter,
            reload=reload,
            inputs=launch_inputs_for(repo),
        )
