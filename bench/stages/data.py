"""The frames a cell trains and evaluates on, shared by every pipeline: the synthetic generator or a real dataset
under ``--data-root`` (``datasets/layout.py``), with held-out videos and extra training data."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from crowdbench.bench.config import DataConfig
from crowdbench.datasets.extra import EXTRA_DATASETS
from crowdbench.datasets.keypoints import COCO_17
from crowdbench.datasets.layout import DataError, check_dataset, load_split, select_videos
from crowdbench.datasets.model import Dataset, Frame

DATA_MODULES = (
    "crowdbench.bench.stages.data",
    "crowdbench.datasets.synthetic",
    "crowdbench.datasets.formats.crowdhuman",
    "crowdbench.datasets.formats.coco",
    "crowdbench.datasets.layout",
    "crowdbench.datasets.extra",
)
"""Modules whose source keys every stage that reads frames."""


def check_data(data: DataConfig) -> None:
    """Fail before any work when the configured data cannot be there (one line: what to put where)."""
    if data.source == "synthetic":
        from crowdbench.datasets.synthetic import PRESETS

        if data.preset not in PRESETS:
            raise DataError(f"unknown synthetic preset {data.preset!r}; presets: {', '.join(PRESETS)}")
        _check_weights(data)
        return
    splits = [data.train_split] if data.holdout_videos else [data.train_split, data.val_split]
    check_dataset(data.root, data.source, splits)
    for extra in data.extra_train:
        check_dataset(data.root, _extra_layout(extra), ["train"])
    _check_weights(data)


def _check_weights(data: DataConfig) -> None:
    if data.extra_weights and len(data.extra_weights) != len(data.extra_train):
        raise DataError(
            f"data.extra_weights has {len(data.extra_weights)} values for {len(data.extra_train)} extra_train datasets"
        )


def _extra_layout(name: str) -> str:
    """The LAYOUTS key an extra training set reads under full; a one-line error when there is none."""
    extra = EXTRA_DATASETS[name]
    if extra.layout is None:
        raise DataError(f"extra training data {name!r} ({extra.title}) cannot run under full: {extra.missing}")
    return extra.layout


def _extra_frames(data: DataConfig, name: str, schema: str) -> list[Frame]:
    """Train frames of one extra dataset: its synthetic stand-in when the main data is synthetic, else the real set."""
    if data.source == "synthetic":
        return _synthetic(EXTRA_DATASETS[name].smoke_preset, data.seed, schema).frames("train")
    return load_split(data.root, _extra_layout(name), "train")


def weighted_frames(frames: list[Frame], weight: float, seed: int) -> list[Frame]:
    """``weight`` x the frames: whole copies for the integer part, then a seeded subset for the fraction."""
    whole, frac = divmod(weight, 1.0)
    n_more = round(frac * len(frames))
    pick = np.random.default_rng(seed).permutation(len(frames))[:n_more]
    return frames * int(whole) + [frames[i] for i in sorted(pick)]


@cache
def _synthetic(preset: str, seed: int, schema: str) -> Dataset:
    from crowdbench.datasets.synthetic import generate

    return generate(preset, seed=seed, schema=schema)


def load_frames(data: DataConfig, split: str, schema: str = COCO_17.name) -> list[Frame]:
    """Frames of one split: the synthetic generator (keypoints annotated in ``schema``) or a real dataset (as it
    has them).

    With ``holdout_videos`` the validation split is those videos of the train split and the train split the
    other videos; ``extra_train`` adds the train split of other datasets to the training frames.
    """
    is_val = split == data.val_split
    source_split = data.train_split if data.holdout_videos else split
    if data.source == "synthetic":
        frames = _synthetic(data.preset, data.seed, schema).frames(source_split)
    else:
        frames = load_split(data.root, data.source, source_split)
    if data.holdout_videos:
        where = f"{data.source} {data.train_split} split"
        frames = select_videos(frames, data.holdout_videos, keep=is_val, where=where)
    if not is_val:
        weights = data.extra_weights or (1.0,) * len(data.extra_train)
        for i, (extra, weight) in enumerate(zip(data.extra_train, weights, strict=True)):
            more = _extra_frames(data, extra, schema)
            frames = frames + (more if weight == 1.0 else weighted_frames(more, weight, data.seed + 1000 * (i + 1)))
    if is_val and data.max_val_images:
        frames = frames[: data.max_val_images]
    return frames


def data_slice(data: DataConfig, split: str, schema: str | None = None) -> dict[str, Any]:
    """The part of ``data`` that decides the frames of ``split`` (a stage key's data slice); ``schema`` is the
    keypoint schema of pipelines that read keypoints."""
    out: dict[str, Any] = {
        "source": data.source,
        "preset": data.preset,
        "seed": data.seed,
        "root": str(data.root) if data.root else None,
        "split": split,
        "max_images": data.max_val_images if split == data.val_split else None,
    }
    if schema is not None:
        out["schema"] = schema
    if data.holdout_videos:  # only present when used, so existing cache keys stay valid
        out["holdout_videos"] = list(data.holdout_videos)
    if data.extra_train and split == data.train_split:
        out["extra_train"] = list(data.extra_train)
        if data.extra_weights:
            out["extra_weights"] = list(data.extra_weights)
    return out
