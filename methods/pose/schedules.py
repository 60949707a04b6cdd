"""Training schedules S1 / S2 / S3 for occlusion augmentation (paper ``occlusion-aug`` §3.2, §4.3.1, Table 4).

Spec: ``reference/methods.md`` §3 "Schedules" (HRNet-W32 256×192: Adam, base LR 1e-3, step decay × 0.1).

* ``baseline``: S1 without OA (E1); ``s1``: 210 epochs, drops at 170 / 200, OA from epoch 0 (E2);
* ``s2``: 420 epochs, drops at 380 / 410, OA from epoch 0 (E4; E3 = ``SCHEDULES["s2"].without_oa()``);
* ``s3``: S1 without OA, then S1 again with OA (E5): the second stage restarts at epoch 210 with the LR back at its
  base value and drops at 380 / 410 (= 170 / 200 of stage 2). The restart is inferred from the public AID fine-tune
  config (methods.md §3); at a restart the optimizer state is reset (Adam moments), as if stage 2 were a new run
  initialised from stage 1's weights — the trainer asks :func:`restarts_at` each epoch and rebuilds the optimizer.

Epochs are 0-based; a milestone m means "the LR is already dropped during epoch m" (``MultiStepLR``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

__all__ = ["SCHEDULES", "Schedule", "lr_at", "make_scheduler", "oa_active", "restarts_at"]


@dataclass(frozen=True)
class Schedule:
    """A step schedule: ``epochs`` in all, LR × ``gamma`` at each of ``milestones`` (absolute epochs).

    ``oa_from_epoch``: first epoch with occlusion augmentation (None = never). ``restart_epoch``: epoch at which the
    LR returns to the base value and the optimizer is reset; milestones before it no longer count after it.
    """

    name: str
    epochs: int
    milestones: tuple[int, ...]
    gamma: float = 0.1
    oa_from_epoch: int | None = None
    restart_epoch: int | None = None

    def __post_init__(self) -> None:
        ms = tuple(int(m) for m in self.milestones)
        object.__setattr__(self, "milestones", ms)
        if self.epochs < 1:
            raise ValueError(f"{self.name}: epochs must be >= 1, got {self.epochs}")
        if any(b <= a for a, b in itertools.pairwise(ms)) or any(not 0 < m < self.epochs for m in ms):
            raise ValueError(f"{self.name}: milestones must be strictly increasing in (0, {self.epochs}), got {ms}")
        for field in ("oa_from_epoch", "restart_epoch"):
            v = getattr(self, field)
            if v is not None and not 0 <= v < self.epochs:
                raise ValueError(f"{self.name}: {field} must be in [0, {self.epochs}), got {v}")

    def without_oa(self, name: str | None = None) -> Schedule:
        """The same LR schedule with occlusion augmentation off (e.g. E3 = S2 without OA)."""
        return dataclasses.replace(self, name=name or f"{self.name}_no_oa", oa_from_epoch=None)

    def scaled(self, factor: float) -> Schedule:
        """All epoch numbers × ``factor`` (smoke profile), keeping the schedule's shape.

        Each boundary (0, milestones, OA start, restart, end) is rounded half up; then every boundary is pushed to at
        least one epoch after the previous one, so order is kept and each phase lasts ≥ 1 epoch. Epochs after a
        restart are scaled relative to the restart, so S3's two stages stay identical.
        """
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        r = self.restart_epoch
        points = sorted({0, self.epochs, *self.milestones} | {v for v in (self.oa_from_epoch, r) if v is not None})
        segments = [points] if not r else [[p for p in points if p <= r], [p for p in points if p >= r]]
        new: dict[int, int] = {}
        for seg in segments:
            start = seg[0]
            base = new.get(start, 0)
            prev = None
            for p in seg:
                v = base + math.floor((p - start) * factor + 0.5)
                if prev is not None:
                    v = max(v, prev + 1)
                new[p] = prev = v
        return dataclasses.replace(
            self,
            name=f"{self.name}@{factor:g}",
            epochs=new[self.epochs],
            milestones=tuple(new[m] for m in self.milestones),
            oa_from_epoch=None if self.oa_from_epoch is None else new[self.oa_from_epoch],
            restart_epoch=None if r is None else new[r],
        )


SCHEDULES: dict[str, Schedule] = {
    "baseline": Schedule("baseline", 210, (170, 200)),
    "s1": Schedule("s1", 210, (170, 200), oa_from_epoch=0),
    "s2": Schedule("s2", 420, (380, 410), oa_from_epoch=0),
    "s3": Schedule("s3", 420, (170, 200, 380, 410), oa_from_epoch=210, restart_epoch=210),
}


def _factor(schedule: Schedule, epoch: int) -> float:
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    r = schedule.restart_epoch
    start = r if r is not None and epoch >= r else 0
    drops = sum(1 for m in schedule.milestones if start <= m <= epoch)
    return schedule.gamma**drops


def lr_at(schedule: Schedule, epoch: int, base_lr: float) -> float:
    """LR during 0-based ``epoch``: ``base_lr × gamma^(milestones ≤ epoch since the last restart)``."""
    return base_lr * _factor(schedule, epoch)


def oa_active(schedule: Schedule, epoch: int) -> bool:
    """Whether occlusion augmentation is on during ``epoch``."""
    return schedule.oa_from_epoch is not None and epoch >= schedule.oa_from_epoch


def restarts_at(schedule: Schedule, epoch: int) -> bool:
    """True at the first epoch of a restarted stage (S3: 210): reset the optimizer state before training it.

    :func:`make_scheduler`'s LR already returns to base there; resetting Adam's moments is the trainer's job
    (rebuild the optimizer and its scheduler with ``start_epoch=epoch``), as if stage 2 were a fresh run.
    """
    return schedule.restart_epoch is not None and epoch == schedule.restart_epoch


def make_scheduler(
    optimizer,
    schedule: Schedule,
    *,
    iters_per_epoch: int = 1,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    start_epoch: int = 0,
):
    """A ``torch.optim.lr_scheduler.LambdaLR`` giving ``lr_at(schedule, epoch, base_lr)`` for each param group.

    ``iters_per_epoch = 1`` (default): call ``scheduler.step()`` once per epoch. With ``iters_per_epoch > 1`` call it
    once per iteration; the epoch is ``start_epoch + step // iters_per_epoch``. Optional linear warm-up (mmcv
    ``linear``, as in the AID config: 500 iterations from 0.001×): factor ``1 − (1 − warmup_factor)·(1 − t/W)`` for
    the first ``W = warmup_iters`` steps of the run *and* of a restarted stage (steps count iterations when stepped
    per iteration). ``start_epoch`` lets a trainer rebuild optimizer + scheduler at a restart (or on resume).
    """
    from torch.optim.lr_scheduler import LambdaLR

    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    r = schedule.restart_epoch

    def factor(step: int) -> float:
        epoch = start_epoch + step // iters_per_epoch
        f = _factor(schedule, epoch)
        if warmup_iters > 0:
            stage_start = r if r is not None and epoch >= r else 0
            t = step + (start_epoch - stage_start) * iters_per_epoch  # iterations since the stage began
            if 0 <= t < warmup_iters:
                f *= 1 - (1 - warmup_factor) * (1 - t / warmup_iters)
        return f

    return LambdaLR(optimizer, factor)
