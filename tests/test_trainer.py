"""The one trainer (``bench/training.py``): resume is bit-exact, the non-finite guard names the step and keeps the
last checkpoint, the loop's log survives the interruption."""

from __future__ import annotations

import pytest
import torch

from crowdbench.bench.errors import NonFiniteLossError
from crowdbench.bench.training import Trainer


def _fit(scratch, stop: int, poison_at: int | None = None) -> tuple[torch.nn.Module, list]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "cpu", scratch, grad_clip=1.0)

    def step(it: int, batch: torch.Tensor, _bar) -> dict:
        loss = (model(batch + torch.randn(4, 3)) ** 2).mean()  # draws from the global RNG: restored on resume
        loss = loss * float("nan") if it == poison_at else loss
        return {"it": it, "loss": trainer.step({"mse": loss}, f"iteration {it}").total}

    def batches(start: int):
        return (torch.full((4, 3), float(i)) for i in range(start, stop))

    return model, trainer.fit(stop, step, batches=batches, checkpoint_every=2)


def test_an_interrupted_run_resumes_bit_exactly(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole, whole_log = _fit(tmp_path / "a", 6)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 3 \(mse=nan\); last checkpoint kept"):
        _fit(tmp_path / "b", 6, poison_at=3)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()  # iterations 0-1
    resumed, resumed_log = _fit(tmp_path / "b", 6)
    assert resumed_log == whole_log and len(whole_log) == 6
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
