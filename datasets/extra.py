"""Extra detector training data (paper 000 section 2.2, Table 2): what each ``data.extra_train`` name reads.

Under ``full`` a name reads the train split of a dataset of :data:`~crowdbench.datasets.layout.LAYOUTS`; under
``smoke`` (synthetic main data) it is a synthetic stand-in of a different crowd style (a preset of
``datasets/synthetic.py``). CityPersons has no reader here and the paper's self-collected data is not public:
``full`` fails for them with one line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtraDataset:
    name: str
    title: str
    layout: str | None  # dataset key of LAYOUTS read under full; None = not readable
    smoke_preset: str  # synthetic stand-in under smoke
    missing: str = ""  # why full cannot read it (layout None)


EXTRA_DATASETS: dict[str, ExtraDataset] = {
    e.name: e
    for e in (
        ExtraDataset("crowdhuman", "CrowdHuman (15k images, 339k boxes)", "crowdhuman", "crowdhuman_like"),
        ExtraDataset("coco", "COCO person (64k images, 262k boxes)", "coco", "coco_like"),
        ExtraDataset(
            "cityperson",
            "CityPersons (2.9k images, 19k boxes)",
            None,
            "cityperson_like",
            "crowdbench has no CityPersons reader (datasets/layout.py has no 'cityperson' layout)",
        ),
        ExtraDataset(
            "self_collected",
            "paper 000's self-collected data (2k images, 30k boxes)",
            None,
            "self_collected_like",
            "the paper's self-collected data is not public",
        ),
    )
}
