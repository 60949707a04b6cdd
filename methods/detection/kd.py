"""Tf-KD on the R-CNN class logits (Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label
Smoothing Regularization", CVPR 2020; paper 000 section 2.3: "we apply KD regularization [27] in the class's logits
of the detection model"). Spec: ``shared/reference/methods.md`` section 2.

The loss replaces the cross-entropy of the sampled RoIs' classification inside the box loss; box regression is
untouched. Modes (``model.kd``):

- ``reg`` (Tf-KD_reg, designed teacher): ``p^d(k) = a`` on the true class, ``(1 - a)/(K - 1)`` elsewhere,
  ``p^d_tau = softmax(p^d / tau)``; ``L = (1 - alpha) CE(q, p) + alpha m KL(p^d_tau || p)`` -- the reference code
  uses no student temperature here (``kd_student_tau_in_reg`` switches the paper-style ``p_tau`` on).
- ``self`` (Tf-KD_self): the teacher is a trained, frozen copy of the same detector (the ``train`` stage of the
  cell with ``model.kd = off``); its backbone runs on the student's batch, its box head on the student's sampled
  proposals. ``L = (1 - alpha) CE + alpha tau^2 m KL(p^t_tau || p_tau)``.
- ``lsr``: label smoothing, correct class ``1 - eps``, others ``eps / (K - 1)`` (the same repository's baseline).

KL reduction: the reference's ``nn.KLDivLoss()`` default of its PyTorch era, the mean over all N x K elements
(``element_mean``); ``batchmean`` divides by N only (K times larger). With the CrowdDet head (K slots) the loss is
applied per slot after the EMD matching (``crowddet.emd_loss``) and summed over slots, like the CE it replaces.

Defaults: Tf-KD publishes no detector hyper-parameters; ``reg`` uses the reference's ResNet-18 CIFAR-100 setting
(alpha 0.1, tau 20, m 100, a 0.99), ``self`` its ResNet-18 setting (alpha 0.95, tau 6, m 50).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from crowdbench.bench.registry import Hook, Plugin, Stage, register

if TYPE_CHECKING:
    from crowdbench.bench.config import DetectorConfig, RunConfig

KDMode = Literal["off", "reg", "self", "lsr"]
MODE_DEFAULTS: dict[str, tuple[float, float, float]] = {"reg": (0.1, 20.0, 100.0), "self": (0.95, 6.0, 50.0)}
"""(alpha, tau, multiplier) per mode: the reference's ResNet-18 CIFAR-100 ``params.json`` (methods.md 2)."""


def designed_teacher(labels: Tensor, num_classes: int, a: float = 0.99, tau: float = 20.0) -> Tensor:
    """``softmax(p^d / tau)`` with ``p^d = a`` on ``labels`` and ``(1 - a)/(K - 1)`` elsewhere (Tf-KD_reg eq.)."""
    p = torch.full((len(labels), num_classes), (1.0 - a) / (num_classes - 1), device=labels.device)
    p[torch.arange(len(labels), device=labels.device), labels] = a
    return F.softmax(p / tau, dim=-1)


def kl_divergence(log_p: Tensor, target: Tensor, valid: Tensor, reduction: str = "element_mean") -> Tensor:
    """``KL(target || p)`` over rows with ``valid``; ``element_mean``: sum / (N K) (reference), ``batchmean``: / N."""
    n, k = log_p.shape
    total = (F.kl_div(log_p, target, reduction="none") * valid[:, None]).sum()
    return total / (n * k if reduction == "element_mean" else n)


@dataclass(frozen=True)
class TfKDLoss:
    """Classification loss of one prediction slot: ``(logits [N,C], labels [N], teacher logits [N,C] | None)``.

    Labels -1 (ignore) contribute zero; the CE is a sum over rows divided by N, as in ``crowddet.emd_loss``, so
    ``alpha = 0`` gives exactly the plain loss.
    """

    mode: KDMode = "reg"
    alpha: float = 0.1
    tau: float = 20.0
    multiplier: float = 100.0
    a: float = 0.99
    eps: float = 0.1
    reduction: Literal["element_mean", "batchmean"] = "element_mean"
    student_tau_in_reg: bool = False

    def __call__(self, logits: Tensor, labels: Tensor, teacher_logits: Tensor | None = None) -> Tensor:
        n, k = logits.shape
        if n == 0:
            return logits.sum() * 0.0
        valid = (labels >= 0).float()
        safe = labels.clamp(min=0)
        log_p = F.log_softmax(logits.float(), dim=-1)
        ce = -(log_p.gather(1, safe[:, None])[:, 0] * valid).sum() / n
        if self.mode == "lsr":
            q = torch.full_like(log_p, self.eps / (k - 1))
            q[torch.arange(n, device=q.device), safe] = 1.0 - self.eps
            return -((q * log_p).sum(-1) * valid).sum() / n
        if self.mode == "reg":
            target = designed_teacher(safe, k, self.a, self.tau)
            student = F.log_softmax(logits.float() / self.tau, dim=-1) if self.student_tau_in_reg else log_p
            scale = self.alpha * self.multiplier
        elif self.mode == "self":
            if teacher_logits is None:
                raise ValueError("Tf-KD self needs the teacher's logits")
            target = F.softmax(teacher_logits.detach().float() / self.tau, dim=-1)
            student = F.log_softmax(logits.float() / self.tau, dim=-1)
            scale = self.alpha * self.tau * self.tau * self.multiplier
        else:
            raise ValueError(f"unknown KD mode {self.mode!r}; valid: reg, self, lsr")
        return (1.0 - self.alpha) * ce + scale * kl_divergence(student, target, valid, self.reduction)


def loss_from_config(cfg: DetectorConfig) -> TfKDLoss:
    return TfKDLoss(
        cfg.kd,
        cfg.kd_alpha,
        cfg.kd_tau,
        cfg.kd_multiplier,
        cfg.kd_a,
        cfg.kd_eps,
        cfg.kd_reduction,
        cfg.kd_student_tau_in_reg,
    )


class SelfTeacher:
    """A frozen trained detector (eval mode, not a submodule of the student: ``student.train()`` leaves it alone).

    :meth:`capture` is a forward pre-hook on the student's backbone: the teacher's backbone + FPN runs on the same
    transformed batch; :meth:`outputs` pools the student's sampled proposals through the teacher's
    ``box_roi_pool -> box_head -> box_predictor`` (methods.md 2, "Applying it to a detector").
    """

    def __init__(self, teacher: nn.Module) -> None:
        self.model = teacher.eval().requires_grad_(False)
        self.features: dict[str, Tensor] | None = None

    def capture(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        with torch.no_grad():
            self.features = self.model.backbone(args[0])

    @torch.no_grad()
    def outputs(self, proposals: list[Tensor], image_shapes: list[tuple[int, int]]) -> dict[str, Tensor]:
        if self.features is None:
            raise RuntimeError("SelfTeacher: the student's backbone hook did not run")
        rh = self.model.roi_heads
        out = rh.box_predictor(rh.box_head(rh.box_roi_pool(self.features, proposals, image_shapes)))
        self.features = None
        return out


@dataclass
class DetectorKD:
    """What ``MultiInstanceRoIHeads.kd`` holds: the per-slot loss and, for ``self``, the teacher."""

    loss: TfKDLoss
    teacher: SelfTeacher | None = None

    def teacher_outputs(self, proposals: list[Tensor], image_shapes: list[tuple[int, int]]) -> dict[str, Tensor]:
        return self.teacher.outputs(proposals, image_shapes) if self.teacher is not None else {}


def attach_kd(model: nn.Module, cfg: DetectorConfig, teacher_path: Path | None = None, device: str = "cpu") -> None:
    """Switch Tf-KD on in a built detector (``model.roi_heads.kd``); ``self`` loads the teacher from
    ``cfg.kd_teacher`` or ``teacher_path`` (the baseline cell's ``train`` stage output)."""
    if cfg.kd == "off":
        return
    if cfg.cascade:
        raise ValueError("kd_regularization with detector.cascade_rcnn is not supported (KD hooks the one R-CNN head)")
    teacher = None
    if cfg.kd == "self":
        path = cfg.kd_teacher or teacher_path
        if path is None:
            raise ValueError("model.kd=self needs a teacher: model.kd_teacher or the baseline cell's trained model")
        net = load_teacher(cfg, Path(path), "model.kd_teacher" if cfg.kd_teacher else None)
        teacher = SelfTeacher(net.to(device))
        model.backbone.register_forward_pre_hook(teacher.capture)
    model.roi_heads.kd = DetectorKD(loss_from_config(cfg), teacher)


def load_teacher(cfg: DetectorConfig, path: Path, setting: str | None = "model.kd_teacher") -> nn.Module:
    """The ``self`` teacher: the detector of ``cfg`` without KD, its weights from ``path`` (all keys must fit)."""
    # deferred: start-up (numpy)
    from crowdbench.methods.detection.faster_rcnn import build_detector, load_detector_weights

    net = build_detector(cfg.model_copy(update={"kd": "off", "kd_teacher": None}))
    load_detector_weights(net, path, cfg, setting)
    return net


def teacher_config(run: RunConfig) -> RunConfig | None:
    """The cell whose trained model is the ``self`` teacher: the same config with every KD field at its default
    (so it is the baseline row's ``train`` stage); ``None`` without ``self`` or with an explicit ``kd_teacher``."""
    if run.model.kd != "self" or run.model.kd_teacher is not None:
        return None
    teacher = run.model_copy(deep=True)
    for name in [f for f in type(run.model).model_fields if f.startswith("kd")]:
        setattr(teacher.model, name, type(run.model).model_fields[name].default)
    return teacher


class _KDOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["reg", "self", "lsr"] = Field("reg", description="reg (designed teacher), self, lsr")
    alpha: float | None = Field(None, ge=0.0, le=1.0, description="KD weight; none = the mode's reference value")
    tau: float | None = Field(None, gt=0.0, description="temperature; none = reference (reg 20, self 6)")
    multiplier: float | None = Field(None, ge=0.0, description="m; none = reference (reg 100, self 50)")
    a: float = Field(0.99, gt=0.0, lt=1.0, description="designed teacher's correct-class probability (reg)")
    eps: float = Field(0.1, gt=0.0, lt=1.0, description="label smoothing (lsr)")
    reduction: Literal["element_mean", "batchmean"] = "element_mean"
    student_tau_in_reg: bool = Field(False, description="paper-style p_tau for the student in reg (code: off)")
    teacher: Path | None = Field(None, description="self: a trained detector state dict; none = the baseline cell")


@register("kd_regularization")
class KDRegularization(Plugin):
    """Tf-KD on the detector's class logits (Yuan et al. CVPR 2020; paper 000 section 2.3, "KD regularization").

    Sets the ``model.kd*`` fields. No detector values are published: alpha/tau/m default to the reference's
    ResNet-18 CIFAR-100 values of the mode (reg 0.1 / 20 / 100, self 0.95 / 6 / 50).
    """

    hook: ClassVar[Hook] = "loss"
    stage: ClassVar[Stage] = "train"
    Config = _KDOptions
    edits: ClassVar[tuple[str, ...]] = (
        *("model.kd", "model.kd_alpha", "model.kd_tau", "model.kd_multiplier", "model.kd_a", "model.kd_eps"),
        *("model.kd_reduction", "model.kd_student_tau_in_reg", "model.kd_teacher"),
    )

    def apply(self, run: RunConfig) -> None:
        c: _KDOptions = self.config  # type: ignore[assignment]
        alpha, tau, m = MODE_DEFAULTS.get(c.mode, (0.0, 1.0, 0.0))
        m_ = run.model
        m_.kd = c.mode
        m_.kd_alpha = alpha if c.alpha is None else c.alpha
        m_.kd_tau = tau if c.tau is None else c.tau
        m_.kd_multiplier = m if c.multiplier is None else c.multiplier
        m_.kd_a, m_.kd_eps, m_.kd_reduction = c.a, c.eps, c.reduction
        m_.kd_student_tau_in_reg, m_.kd_teacher = c.student_tau_in_reg, c.teacher
