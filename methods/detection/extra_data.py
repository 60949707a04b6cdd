"""Extra detector training data (paper 000 section 2.2, Table 2): plugins ``extra_data.<name>`` add a dataset's
train split to the training frames (``data.extra_train``; the union, optionally weighted by ``data.extra_weights``).

Under ``smoke`` each is a synthetic stand-in of a different crowd style (``datasets/extra.py``, presets
``*_like`` of ``datasets/synthetic.py``); under ``full`` the real dataset (CityPersons and the self-collected data
fail with one line: no reader / not public). Paper 000: "All the extra data are randomly merged into the official
training set" (section 3.3, said of the pose data; the detector text gives no mixing rule either).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from crowdbench.bench.registry import Hook, Plugin, Stage
from crowdbench.methods.declarative import variant
from crowdbench.methods.weights import appended_weight

if TYPE_CHECKING:
    from crowdbench.bench.config import RunConfig


class _ExtraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, gt=0.0, description="fraction of its frames used per pass (> 1 repeats them)")


class _ExtraData(Plugin):
    """Adds the train split of ``dataset`` to the training frames once, weighted by option ``weight``."""

    dataset: ClassVar[str]
    hook: ClassVar[Hook] = "data"
    stage: ClassVar[Stage] = "train"
    Config = _ExtraOptions
    edits: ClassVar[tuple[str, ...]] = ("data.extra_train", "data.extra_weights")

    def apply(self, run: RunConfig) -> None:
        d = run.data
        if self.dataset in d.extra_train:
            return
        d.extra_weights = appended_weight(d.extra_weights, len(d.extra_train), self.config.weight)  # type: ignore[attr-defined]
        d.extra_train = (*d.extra_train, self.dataset)


CrowdHuman = variant("extra_data.crowdhuman", _ExtraData, dataset="crowdhuman", doc=(
    'CrowdHuman train split (15k images, 339k boxes; paper 000 Table 2, "HIE + CrowdHuman").'
))  # fmt: skip
COCOPerson = variant("extra_data.coco_person", _ExtraData, dataset="coco", doc=(
    'COCO person images (64k images, 262k boxes; paper 000 Table 2, "HIE + COCO person"); full reads the COCO\n'
    "    person-keypoints train annotations (every image with a person)."
))  # fmt: skip
CityPerson = variant("extra_data.cityperson", _ExtraData, dataset="cityperson", doc=(
    'CityPersons (2.9k images, 19k boxes; paper 000 Table 2, "HIE + CityPerson"); smoke only (no reader).'
))  # fmt: skip
SelfCollected = variant("extra_data.self_collected", _ExtraData, dataset="self_collected", doc=(
    "Paper 000's self-collected data (2k images, 30k boxes; Table 2); not public: smoke runs a synthetic stand-in."
))  # fmt: skip
