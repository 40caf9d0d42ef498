"""A chat conversation as the OpenAI API and chat templates take it: an optional system message, then
alternating user and assistant turns. `modelwiz chat` keeps one per session (`/reset` clears it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
RESET = "/reset"  # what a user types to start the conversation again


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        """The messages to send: the system message first (when there is one), then the turns."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.turns)

    def ask(self, text: str) -> list[dict[str, str]]:
        """Add a user turn and return the messages to send for it. A question left without an answer
        (its reply failed) is replaced, so turns keep alternating as most chat templates require."""
        if self.turns and self.turns[-1]["role"] == "user":
            self.turns.pop()
        self.turns.append({"role": "user", "content": text})
        return self.messages()

    def answer(self, text: str) -> None:
        """Record the assistant's reply to the last question."""
        if not self.turns or self.turns[-1]["role"] != "user":
            raise ValueError("an answer needs a question before it")
        self.turns.append({"role": "assistant", "content": text})

    def reset(self) -> None:
        """Forget the turns; the system message stays."""
        self.turns.clear()

    @property
    def exchanges(self) -> int:
        """How many questions were answered."""
        return sum(1 for turn in self.turns if turn["role"] == "assistant")
