"""What the wizard has learned and decided so far: one frozen value, replaced step by step.

Both UIs (Textual and plain prompts) carry the same state through the same steps
(`wizard.wizard_flow` says which, and how each step's answer changes it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from wizard.service import Check, Endpoints, ExistingModel, ModelChoice, PlanView

if TYPE_CHECKING:
    from wizard.gpus import GpuInventory


@dataclass(frozen=True)
class WizardState:
    spec: str | None = None  # --gpus text, or what the user described
    inventory: GpuInventory | None = None
    checks: tuple[Check, ...] = ()
    existing: tuple[ExistingModel, ...] = ()
    choices: tuple[ModelChoice, ...] = ()
    plan: PlanView | None = None
    reserve_bytes: int = 0  # kept free on every GPU for models added later (the plan step's choice)
    launch: bool = True  # False: "download only" (something stops the launch; `modelwiz up` later)
    endpoints: Endpoints | None = None

    def with_(self, **changes: object) -> WizardState:
        return replace(self, **changes)  # type: ignore[arg-type]
