"""Distilling a compact arbitrary-style model on the shared loop: the AdaIN trainer's losses (VGG-19 as the teacher
and judge) with a student encoder and decoder, plus the distillation of the student's features onto VGG's."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ...errors import ImpastoError
from ...losses.stats import mean_std
from ...losses.terms import LaplacianLoss
from ...methods.adain.engine import check_encoder, load_decoder, save_student
from ...nets.adain import BOTTLENECK, MARGIN, STYLE_LAYERS, Decoder, adain
from ...nets.student import SKIP, STAGES, Projections, StudentDecoder, StudentEncoder, joint_bottleneck
from ..adain.trainer import CALIBRATION_STEP, AdaINTrainer, PairTask, decoder_metadata, run_pairs
from ..adain.trainer import RESUME_KEYS as ADAIN_KEYS
from . import Config

RESUME_KEYS = (*ADAIN_KEYS, "widths", "skip", "skip_lr")
TEXTURE_LAYERS = STYLE_LAYERS[:2]  # relu1_1, relu2_1: the brush marks, at a quarter of VGG-19-to-relu4_1's cost


class DistillTrainer(AdaINTrainer):
    """VGG-19 (frozen teacher and loss network) + student encoder, projections and decoder; with a `teacher`
    decoder (VGG-19's, frozen), also the picture the VGG model paints, for output distillation."""

    def __init__(
        self,
        widths,
        weights=None,
        dtype: torch.dtype | None = None,
        teacher: Decoder | None = None,
        skip: bool = False,
    ) -> None:
        super().__init__(StudentDecoder(widths, skip=skip), weights=weights, dtype=dtype)
        self.student = StudentEncoder(widths)
        self.projections = Projections(widths)
        self.teacher = teacher.requires_grad_(False).eval() if teacher is not None else None
        self.laplacian = LaplacianLoss()

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The student's features at its four stages, the last one what previews and inference decode from (with a
        skip, the joint bottleneck)."""
        with self._autocast(x.device):
            feats = self.student(x)
        return [feats[name].float() for name in STAGES[:-1]] + [self._bottleneck(feats)]

    def _bottleneck(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the decoder reads of the student's features (fp32): relu4_1, or with a skip its joint bottleneck."""
        relu4_1 = feats[BOTTLENECK].float()
        return relu4_1 if self.decoder.skip is None else joint_bottleneck(relu4_1, feats[SKIP].float())

    @torch.no_grad()
    def calibrate(self, content: torch.Tensor, style: torch.Tensor) -> None:
        super().calibrate(content, style)  # the teacher's layer normalizers
        bottleneck = self.encode(torch.cat([content, style]))[-1][:, : self.student.widths[-1]]
        self.decoder.in_scale.fill_(float(1 / bottleneck.mean().clamp_min(1e-6)))

    def forward(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        identity: bool = False,
        perceptual: bool = True,
        texture: bool = False,
        laplacian: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The losses of one batch, fp32 scalars: content, style, identity, distill, teacher, texture, laplacian.
        Content and style are 0 unless `perceptual` (then VGG's deeper layers never see the output and no gradient
        flows back through them), identity unless `identity`, the teacher's without a teacher decoder, texture unless
        `texture` (AdaIN's style loss at the two finest layers only: a quarter of VGG's cost), laplacian unless
        `laplacian` (the photo's edges held: :class:`impasto.losses.LaplacianLoss`)."""
        loss = self.loss_module()
        b = content.shape[0]
        both = torch.cat([content, style])
        zero = content.new_zeros(())
        with torch.no_grad():
            teacher = loss.features(both, grad=False)  # normalized units: each layer's mean activation is about 1
            target = adain(teacher[BOTTLENECK][:b], *mean_std(teacher[BOTTLENECK][b:]))
            if perceptual:
                loss.set_feature_targets({BOTTLENECK: target}, {n: teacher[n][b:] for n in STYLE_LAYERS})
            painted = self._teacher_picture(target) if self.teacher is not None else None
        with self._autocast(both.device):
            student = self.student(both)
            mapped = self.projections(student)
        distill = sum(F.mse_loss(mapped[n].float(), teacher[n].float()) for n in STAGES) / len(STAGES)
        s4 = self._bottleneck(student)
        dec_in = adain(s4[:b], *mean_std(s4[b:]))
        if identity:
            dec_in = torch.cat([dec_in, s4[:b]])
        with self._autocast(dec_in.device):
            decoded = self.decoder(dec_in)
        content_loss, style_loss = loss.terms(decoded[:b].float()) if perceptual else (zero, zero)
        identity_loss = F.mse_loss(decoded[b:].float(), content) if identity else zero
        teacher_loss = zero if painted is None else F.l1_loss(_inner(decoded[:b].float()), _inner(painted))
        laplacian_loss = self.laplacian(_inner(decoded[:b].float()), _inner(content)) if laplacian else zero
        texture_loss = zero
        if texture:
            x = decoded[:b]
            if x.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast(x.device):
                fine = self.encoder(x, layers=TEXTURE_LAYERS)
            for i, name in enumerate(TEXTURE_LAYERS):
                mean, std = mean_std(fine[name].float() * self.layer_scale[i])
                target_mean, target_std = mean_std(teacher[name][b:].float())
                texture_loss = texture_loss + F.mse_loss(mean, target_mean) + F.mse_loss(std, target_std)
        return {
            "content": content_loss,
            "style": style_loss,
            "identity": identity_loss,
            "distill": distill,
            "teacher": teacher_loss,
            "texture": texture_loss,
            "laplacian": laplacian_loss,
        }

    def _teacher_picture(self, target: torch.Tensor) -> torch.Tensor:
        """What the VGG model paints from VGG's AdaIN target (normalized units)."""
        dec_in = target / self.layer_scale[-1]  # raw units: the teacher rescales on entry
        if dec_in.device.type == "cpu":
            dec_in = dec_in.contiguous(memory_format=torch.channels_last)
        with self._autocast(dec_in.device):
            return self.teacher(dec_in).float()


def _inner(x: torch.Tensor) -> torch.Tensor:
    # Without inference's reflected margin, VGG's zero padding makes the teacher draw a frame about 12 px wide along
    # the crop's edges; the student is held to the rest (at inference its own margin is cropped away anyway).
    m = MARGIN if min(x.shape[-2:]) > 4 * MARGIN else 0
    return x[..., m : x.shape[-2] - m, m : x.shape[-1] - m]


class _DistillTask(PairTask):
    def parameters(self):
        m = self.model
        params = [*m.student.parameters(), *m.projections.parameters(), *m.decoder.parameters()]
        if m.decoder.skip is None or self.cfg.skip_lr == 1:
            return params
        skip = {id(p) for p in m.decoder.skip.parameters()}
        return [
            {"params": [p for p in params if id(p) not in skip]},
            {"params": list(m.decoder.skip.parameters()), "lr_scale": self.cfg.skip_lr},
        ]

    def loss(self, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        c, s = batch
        perceptual = cfg.content_weight > 0 or cfg.style_weight > 0
        losses = self.model(
            c.to(self.device),
            s.to(self.device),
            cfg.identity_weight > 0,
            perceptual,
            cfg.texture_weight > 0,
            cfg.laplacian_weight > 0,
        )
        weights = {
            "content": cfg.content_weight if perceptual else 0.0,
            "style": cfg.style_weight if perceptual else 0.0,
            "distill": cfg.distill_weight,
            "teacher": cfg.teacher_weight,
            "texture": cfg.texture_weight,
            "laplacian": cfg.laplacian_weight,
            "identity": cfg.identity_weight,
        }
        used = [name for name, w in weights.items() if w > 0 or name == "distill"]
        loss = sum(weights[name] * losses[name] for name in used)
        return loss, {name: losses[name].item() for name in used}

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
        # A warm start from a model file (--init) has no projections or teacher normalizers: fresh and calibrated;
        # from a model without a skip, the skip starts at zero.
        self._warm = "layer_scale" not in state
        missing, unexpected = m.decoder.load_state_dict(state["decoder"], strict=False)
        if unexpected or any(not (self._warm and k.startswith("skip.")) for k in missing):
            first = [*missing, *unexpected][0]
            hint = "; --skip must be as the run began" if first.startswith("skip.") else ""
            raise ImpastoError(f"the decoder's weights do not fit this network ({first}{hint})")
        if not self._warm:
            m.projections.load_state_dict(state["projections"])
            m.layer_scale.copy_(state["layer_scale"])

    def start(self, resumed: bool) -> None:
        if resumed and getattr(self, "_warm", False):
            c, s = self.batch(CALIBRATION_STEP)
            AdaINTrainer.calibrate(self.model, c.to(self.device), s.to(self.device))  # the teacher's only
            self.model.decoder.in_scale.copy_(self._in_scale)
        super().start(resumed)

    def save_output(self, step: int) -> None:
        meta = decoder_metadata(self.cfg, step)
        for name in ("distill_weight", "teacher_weight", "texture_weight", "laplacian_weight"):
            meta[name] = str(getattr(self.cfg, name))
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

    state = _warm_start(cfg) if cfg.init is not None else None
    teacher = _teacher(cfg) if cfg.teacher_weight > 0 else None

    def make_task(weights, dtype, device, contents, styles) -> _DistillTask:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same seed starts from the same networks
            model = DistillTrainer(tuple(cfg.widths), weights=weights, dtype=dtype, teacher=teacher, skip=cfg.skip)
        task = _DistillTask(cfg, model.to(device), contents, styles, device)
        if state is not None:
            task._in_scale = state["decoder"]["in_scale"].clone()
        return task

    if state is not None and resume:
        raise ImpastoError("--init starts a run from a model file; --resume continues a checkpoint: not both")
    return run_pairs(
        cfg,
        make_task,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        on_step=on_step,
        resume_keys=RESUME_KEYS,
        state=state,
    )


def _teacher(cfg: Config) -> Decoder:
    """The bundled VGG-19 AdaIN decoder, which must invert the encoder this run uses."""
    decoder = load_decoder()
    if not isinstance(decoder, Decoder):
        raise ImpastoError("--teacher-weight: the bundled AdaIN model is not a VGG-19 one")
    check_encoder(getattr(decoder, "vgg", None), cfg.weights)
    return decoder


def _warm_start(cfg: Config) -> dict:
    """A loop state from a compact model file: its encoder, decoder and step count (see --init)."""
    decoder = load_decoder(cfg.init)
    encoder = getattr(decoder, "student_encoder", None)
    if encoder is None:
        raise ImpastoError(f"--init {cfg.init}: not a compact model (made by impasto train distill)")
    if encoder.widths != tuple(cfg.widths):
        raise ImpastoError(f"--init {cfg.init} has widths {','.join(map(str, encoder.widths))}, not the --widths given")
    if decoder.skip is not None and not cfg.skip:
        raise ImpastoError(f"--init {cfg.init} has a relu3_1 skip: add --skip")
    student = StudentEncoder(encoder.widths)
    student.load_state_dict(encoder.state_dict(), strict=False)  # the file keeps the stages up to relu4_1: all
    own = {k: v for k, v in decoder.state_dict().items() if not k.startswith("student_encoder.")}
    return {"step": int(getattr(decoder, "steps", 0)), "student": student.state_dict(), "decoder": own}
