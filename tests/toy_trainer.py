"""A toy trainer in one module, registered by the tests only: it proves a new trainer needs no other edit."""

from __future__ import annotations

from dataclasses import dataclass

from impasto.errors import ImpastoError
from impasto.options import option


@dataclass
class Config:
    """Fit one number to a target (a stand-in for a network)."""

    output: str = option(None, "file the fitted number is written to", "str", flag="-o", required=True)
    target: float = option(3.0, "the number to fit", "float", minimum=0)
    steps: int = option(5, "total steps", "int")
    lr: float = option(0.5, "learning rate", "float")
    checkpoint: str | None = option(None, "checkpoint file (default: OUTPUT.ckpt)", "str")
    checkpoint_every: int = option(1, "steps between checkpoints", "int")
    preview_every: int = option(0, "steps between previews (0 = never)", "int")
    preview_dir: str | None = option(None, "preview folder", "str")
    seed: int = option(0, "random seed", "int")
    keep_every: int = option(0, "keep a copy of the output every N steps (0 = never)", "int")

    def validate(self) -> None:
        if self.steps < 1:
            raise ImpastoError(f"--steps must be at least 1, got {self.steps}")


def train(cfg: Config, *, resume=False, overwrite=False, progress=False, on_step=None) -> dict:
    import torch

    from impasto.train import loop
    from impasto.train.data import step_generator

    class Task:
        def __init__(self) -> None:
            self.value = torch.nn.Parameter(torch.zeros(()))

        def parameters(self):
            return [self.value]

        def start(self, resumed: bool) -> None:
            pass

        def batch(self, step: int) -> torch.Tensor:
            # Noisy targets, a pure function of (seed, step).
            return cfg.target + 0.01 * torch.randn((), generator=step_generator(cfg.seed, step))

        def loss(self, batch, step: int):
            loss = (self.value - batch) ** 2
            return loss, {"error": float(loss.detach())}

        def lr(self, step: int) -> float:
            return cfg.lr

        def state_dict(self) -> dict:
            return {"value": self.value.detach().clone()}

        def load_state_dict(self, state: dict) -> None:
            with torch.no_grad():
                self.value.copy_(state["value"])

        def save_output(self, step: int) -> None:
            with open(cfg.output, "w") as f:
                f.write(f"{float(self.value.detach()):.6f}\n")

        def preview(self, step: int):
            return None

    _, state = loop.begin(cfg, resume, overwrite, ())
    return loop.run(Task(), cfg, resume=resume, progress=progress, on_step=on_step, state=state)
