"""The frames a cell trains and evaluates on, shared by every pipeline: the synthetic generator or a real dataset
under ``--data-root`` (``datasets/layout.py``), with held-out videos and extra training data."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from crowdbench.bench.config import DataConfig
from crowdbench.bench.digest import file_digest, folder_signature
from crowdbench.datasets.extra import EXTRA_DATASETS
from crowdbench.datasets.keypoints import COCO_17
from crowdbench.datasets.layout import DataError, check_dataset, load_split, select_videos, split_inputs
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
        # deferred: start-up (cv2)
        from crowdbench.datasets.synthetic import PRESETS, SCENARIOS

        if data.preset not in PRESETS:
            raise DataError(f"unknown synthetic preset {data.preset!r}; presets: {', '.join(PRESETS)}")
        if data.scenario not in SCENARIOS:
            raise DataError(f"unknown synthetic scenario {data.scenario!r}; scenarios: {', '.join(SCENARIOS)}")
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
def _synthetic(preset: str, seed: int, schema: str, scenario: str = "plain", val_videos: int | None = None) -> Dataset:
    # deferred: start-up (cv2)
    from crowdbench.datasets.synthetic import generate

    return generate(preset, seed=seed, schema=schema, scenario=scenario, val_videos=val_videos)


def load_frames(data: DataConfig, split: str, schema: str = COCO_17.name) -> list[Frame]:
    """Frames of one split: the synthetic generator (keypoints annotated in ``schema``) or a real dataset (as it
    has them).

    With ``holdout_videos`` the validation split is those videos of the train split and the train split the
    other videos; ``extra_train`` adds the train split of other datasets to the training frames.
    """
    is_val = split == data.val_split
    source_split = data.train_split if data.holdout_videos else split
    if data.source == "synthetic":
        frames = _synthetic(data.preset, data.seed, schema, data.scenario, data.val_videos).frames(source_split)
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


def _split_content(data_root: Path | None, key: str, split: str) -> dict[str, Any]:
    """Digests of the annotation files of one split and signatures of its image folders (paths relative to the
    data root, so moving the root keeps the keys)."""
    files, folders = split_inputs(data_root, key, split)  # a missing root or file: DataError naming it
    root = Path(data_root or ".")

    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)

    return {
        "annotations": {rel(f): file_digest(f) for f in files},
        "images": {rel(d): folder_signature(d) for d in folders},
    }


def data_content(data: DataConfig, split: str) -> dict[str, Any]:
    """What the frames of ``split`` are read from on disk (real data only): per dataset read, the content digests
    of its annotation files and the signatures of its image folders (what :func:`load_frames` reads)."""
    root = Path(data.root) if data.root is not None else None
    source_split = data.train_split if data.holdout_videos else split
    out = {data.source: _split_content(root, data.source, source_split)}
    if split != data.val_split:
        for extra in data.extra_train:
            out[f"extra:{extra}"] = _split_content(root, _extra_layout(extra), "train")
    return out


def data_slice(data: DataConfig, split: str, schema: str | None = None) -> dict[str, Any]:
    """The part of ``data`` that decides the frames of ``split`` (a stage key's data slice); ``schema`` is the
    keypoint schema of pipelines that read keypoints. Synthetic data is keyed by preset, scenario and seed; real data
    by the content of the files the split reads (:func:`data_content`), not by where they are."""
    real = data.source != "synthetic"
    out: dict[str, Any] = {
        "source": data.source,
        "preset": data.preset,
        "seed": data.seed,
        "root": None if real or data.root is None else str(data.root),
        "split": split,
        "max_images": data.max_val_images if split == data.val_split else None,
    }
    if real:
        out["content"] = data_content(data, split)
    if schema is not None:
        out["schema"] = schema
    if not real and data.scenario != "plain":  # only present when used, so existing cache keys stay valid
        out["scenario"] = data.scenario
    if not real and data.val_videos is not None and split == data.val_split:  # only present when used
        out["val_videos"] = data.val_videos
    if data.holdout_videos:  # only present when used, so existing cache keys stay valid
        out["holdout_videos"] = list(data.holdout_videos)
    if data.extra_train and split == data.train_split:
        out["extra_train"] = list(data.extra_train)
        if data.extra_weights:
            out["extra_weights"] = list(data.extra_weights)
    return out
