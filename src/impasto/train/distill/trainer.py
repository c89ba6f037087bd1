"""Distilling a compact arbitrary-style model on the shared loop: the AdaIN trainer's losses (VGG-19 as the teacher
and judge) with a student encoder and decoder, plus the distillation of the student's features onto VGG's."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ...losses.stats import mean_std
from ...methods.adain.engine import save_student
from ...nets.adain import BOTTLENECK, STYLE_LAYERS, adain
from ...nets.student import STAGES, Projections, StudentDecoder, StudentEncoder
from ..adain.trainer import RESUME_KEYS as ADAIN_KEYS
from ..adain.trainer import AdaINTrainer, _Task, decoder_metadata, run_pairs
from . import Config

RESUME_KEYS = (*ADAIN_KEYS, "widths")


class DistillTrainer(AdaINTrainer):
    """VGG-19 (frozen teacher and loss network) + student encoder, projections and decoder."""

    def __init__(self, widths, weights=None, dtype: torch.dtype | None = None) -> None:
        super().__init__(StudentDecoder(widths), weights=weights, dtype=dtype)
        self.student = StudentEncoder(widths)
        self.projections = Projections(widths)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The student's features at its four stages (what previews and inference decode from)."""
        with self._autocast(x.device):
            feats = self.student(x)
        return [feats[name].float() for name in STAGES]

    @torch.no_grad()
    def calibrate(self, content: torch.Tensor, style: torch.Tensor) -> None:
        super().calibrate(content, style)  # the teacher's layer normalizers
        bottleneck = self.encode(torch.cat([content, style]))[-1]
        self.decoder.in_scale.fill_(float(1 / bottleneck.mean().clamp_min(1e-6)))

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, identity: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(content, style, identity, distillation) losses of one batch, fp32 scalars."""
        loss = self.loss_module()
        b = content.shape[0]
        both = torch.cat([content, style])
        with torch.no_grad():
            teacher = loss.features(both, grad=False)  # normalized units: each layer's mean activation is about 1
            target = adain(teacher[BOTTLENECK][:b], *mean_std(teacher[BOTTLENECK][b:]))
            loss.set_feature_targets({BOTTLENECK: target}, {n: teacher[n][b:] for n in STYLE_LAYERS})
        with self._autocast(both.device):
            student = self.student(both)
            mapped = self.projections(student)
        distill = sum(F.mse_loss(mapped[n].float(), teacher[n].float()) for n in STAGES) / len(STAGES)
        s4 = student[BOTTLENECK].float()
        dec_in = adain(s4[:b], *mean_std(s4[b:]))
        if identity:
            dec_in = torch.cat([dec_in, s4[:b]])
        with self._autocast(dec_in.device):
            decoded = self.decoder(dec_in)
        content_loss, style_loss = loss.terms(decoded[:b].float())
        identity_loss = F.mse_loss(decoded[b:].float(), content) if identity else content_loss.new_zeros(())
        return content_loss, style_loss, identity_loss, distill


class _DistillTask(_Task):
    def parameters(self):
        m = self.model
        return [*m.student.parameters(), *m.projections.parameters(), *m.decoder.parameters()]

    def loss(self, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        c, s = batch
        content, style, identity, distill = self.model(c.to(self.device), s.to(self.device), cfg.identity_weight > 0)
        loss = cfg.content_weight * content + cfg.style_weight * style + cfg.distill_weight * distill
        terms = {"content": content.item(), "style": style.item(), "distill": distill.item()}
        if cfg.identity_weight > 0:
            loss = loss + cfg.identity_weight * identity
            terms["identity"] = identity.item()
        return loss, terms

    def state_dict(self) -> dict:
        m = self.model
        return {
            "student": m.student.state_dict(),
            "projections": m.projections.state_dict(),
            "decoder": m.decoder.state_dict(),
            "layer_scale": m.layer_scale.detach().cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        m = self.model
        m.student.load_state_dict(state["student"])
        m.projections.load_state_dict(state["projections"])
        m.decoder.load_state_dict(state["decoder"])
        m.layer_scale.copy_(state["layer_scale"])

    def save_output(self, step: int) -> None:
        meta = decoder_metadata(self.cfg, step)
        meta["distill_weight"] = str(self.cfg.distill_weight)
        save_student(self.model.student, self.model.decoder, self.cfg.output, metadata=meta)


def train(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train (or continue training) a compact model; returns a summary with the final losses and timings.

    A fresh run refuses to replace an existing checkpoint unless `overwrite`; `resume` continues it. Ctrl-C (and SIGTERM
    in the command line) raises :class:`impasto.train.loop.TrainingInterrupted` after saving a checkpoint.
    """

    def make_task(weights, dtype, device, contents, styles) -> _DistillTask:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same seed starts from the same networks
            model = DistillTrainer(tuple(cfg.widths), weights=weights, dtype=dtype)
        return _DistillTask(cfg, model.to(device), contents, styles, device)

    return run_pairs(
        cfg, make_task, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step, resume_keys=RESUME_KEYS
    )
