"""Loading weights files into models with one-line errors (the setting, the path, what does not fit).

Every loader of a weights file (``load_*_weights`` in ``methods/``, the stages' trained-model loads) goes through
:func:`read_state_dict` and :func:`fit_state_dict`, so training, inference and ``bench/preflight.py`` accept the same
files and report the same line:

- ``model.weights: /x/r50.pth is not a PyTorch checkpoint (invalid load key, 'h'.)``
- ``model.weights: /x/r18.pth does not fit resnet50: 99 missing keys (layer1.0.conv3.weight, ...), 51 shape
  mismatches (layer1.0.conv1.weight 64x64x3x3 vs 64x64x1x1, ...)``
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

SHOWN = 3
"""Keys named per kind of misfit; the count says how many there are."""


class CheckpointError(ValueError):
    """A weights file that cannot be read or does not fit its model; the message is one line that names the
    setting (when known) and the path."""

    def __init__(self, path: str | Path, problem: str, setting: str | None = None) -> None:
        self.path, self.problem, self.setting = Path(path), problem, setting
        where = f"{setting}: {path}" if setting else str(path)
        super().__init__(f"{where} {problem}")

    def for_setting(self, setting: str) -> CheckpointError:
        """The same error naming ``setting`` (what the user wrote) instead of the loader's default."""
        return CheckpointError(self.path, self.problem, setting)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _why_not(path: Path, exc: BaseException) -> str:
    """What ``path`` holds instead of a checkpoint, from its first bytes and ``torch.load``'s error."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as err:
        return _first_line(err)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip format or a plain pickle
        message = str(exc)
        if "WeightsUnpickler error:" in message:  # torch's long weights_only text: keep the reason
            lines = [line.strip() for line in message.split("WeightsUnpickler error:", 1)[1].splitlines()]
            reason = next((line for line in lines if line), _first_line(exc))
            return f"weights-only loading refuses it: {reason[:160]}"
        return f"a damaged or foreign archive: {_first_line(exc)}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:  # a character cut at the end of the 64 bytes is still text
        text = head[: err.start].decode("utf-8") if err.start >= len(head) - 3 else ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        first = text.strip().splitlines()[0] if text.strip() else ""
        return f"a text file starting {first[:40]!r}"
    return f"unrecognised binary data starting {head[:8]!r}"


def read_state_dict(path: str | Path, setting: str | None = None) -> Mapping[str, Tensor]:
    """``torch.load(path, weights_only=True)`` on the CPU; a ``{"state_dict": ...}`` wrapper is unwrapped. A file
    that is not a PyTorch checkpoint of tensors raises :class:`CheckpointError` naming ``setting`` and ``path``."""
    import torch

    try:
        state: Any = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling / zip / IO failure is "not a checkpoint"
        raise CheckpointError(path, f"is not a PyTorch checkpoint ({_why_not(Path(path), exc)})", setting) from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        what = f"it holds a {type(state).__name__}, not a state dict"
        raise CheckpointError(path, f"is not a PyTorch checkpoint ({what})", setting)
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        keys = ", ".join(str(k) for k in list(state)[:5]) or "none"
        raise CheckpointError(path, f"is not a PyTorch checkpoint of model weights (no tensors; keys: {keys})", setting)
    return state  # as loaded: an OrderedDict keeps its ``_metadata`` (module versions) for load_state_dict


def _shape(t: Tensor) -> str:
    return "x".join(str(n) for n in t.shape) or "scalar"


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (", ..." if len(keys) > SHOWN else "")


def fit_state_dict(
    module: nn.Module,
    state: Mapping[str, Tensor],
    path: str | Path,
    arch: str,
    *,
    setting: str | None = None,
    allow_missing: Callable[[str], bool] = lambda key: False,
    allow_unexpected: Callable[[str], bool] = lambda key: False,
) -> None:
    """Load ``state`` into ``module`` (``load_state_dict(strict=False)``) unless a key is missing, unexpected or of
    another shape (``allow_*`` exempt keys), which raises one :class:`CheckpointError` counting each kind and naming
    the first few keys. ``arch`` names the model in the message (``resnet50``)."""
    import torch

    own = module.state_dict()
    mismatched = [k for k, v in state.items() if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape]
    loadable = state
    if mismatched:  # load the rest so that missing / unexpected keys are torch's own lists
        loadable = OrderedDict((k, v) for k, v in state.items() if k not in set(mismatched))
        loadable._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    missing, unexpected = module.load_state_dict(loadable, strict=False)
    missing = [k for k in missing if k not in set(mismatched) and not allow_missing(k)]
    unexpected = [k for k in unexpected if not allow_unexpected(k)]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_few(missing)})")
    if mismatched:
        shown = [f"{k} {_shape(state[k])} vs {_shape(own[k])}" for k in mismatched]
        parts.append(f"{len(mismatched)} shape mismatches ({_few(shown)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
    raise CheckpointError(path, f"does not fit {arch}: " + ", ".join(parts), setting)


def load_weights(
    module: nn.Module,
    path: str | Path,
    arch: str,
    *,
    setting: str | None = None,
    allow_missing: Callable[[str], bool] = lambda key: False,
    allow_unexpected: Callable[[str], bool] = lambda key: False,
) -> None:
    """:func:`read_state_dict` + :func:`fit_state_dict`: a whole model's state dict (strict unless ``allow_*``)."""
    state = read_state_dict(path, setting)
    fit_state_dict(
        module,
        state,
        path,
        arch,
        setting=setting,
        allow_missing=allow_missing,
        allow_unexpected=allow_unexpected,
    )


RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
"""BatchNorm buffers: in a state dict, but not trained."""


def state_parameters(state: Mapping[str, Tensor]) -> int:
    """Floating-point entries of a state dict without BatchNorm's running statistics: what a model trains (the
    stand-in sizes in the records, ``bench/stages/pipeline.py``, and the full models beside them,
    ``bench/model_size.py``)."""
    return int(sum(v.numel() for k, v in state.items() if v.is_floating_point() and not k.endswith(RUNNING_STATS)))
