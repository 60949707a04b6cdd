"""Seeded synthetic crowd videos: the embedded default dataset (DESIGN.md, "Data model").

Each video is a static scene (textured wall and tiled floor with a perspective ground plane, static clutter)
in which articulated stick-figure people walk with a gait, mostly in groups of two or three side by side at
slightly different depths, so that their full boxes overlap heavily. Static occluders (pillars, crates) are
drawn in front of everyone; people are drawn far to near (by the y of their feet). People whose full box is
shorter than the preset's ``min_height`` are recorded as ``Frame.ignore_regions`` instead of instances.

Annotations are computed from a per-frame label map rendered with the same primitives as the image:

- ``Instance.box``: extent of the whole body (hidden parts included, not clipped to the image) + a margin;
- ``Instance.visible_box``: extent of the body's pixels actually visible in the image;
- ``Instance.head_box``: extent of the head (hair and face circles), the PoseTrack / CrowdHuman head box;
- keypoints (COCO-17 unless another schema is asked for, :data:`SCHEMA_ROWS`): ``v = 2`` visible, ``1`` covered
  by another person or an occluder, ``0`` outside the image (then ``x = y = 0``, as in COCO files). Coordinates are
  continuous, pixel ``j`` spans ``[j, j+1)``.

Randomness comes only from ``numpy.random.default_rng`` seeded with ``[seed, split, video, ...]``; images are
re-rendered on demand (``Frame.image`` is a :class:`SyntheticImage`), byte-identical for the same seed.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_bytes, atomic_write_text
from crowdbench.datasets.formats.coco import CocoFrames, write_coco_keypoints
from crowdbench.datasets.formats.crowdhuman import record_id, write_odgt
from crowdbench.datasets.formats.hie import write_hie
from crowdbench.datasets.formats.mot import write_mot_sequence
from crowdbench.datasets.keypoints import COCO_17, CROWDPOSE_14, HIE_14, POSETRACK_17, get_schema
from crowdbench.datasets.model import Dataset, Frame, Instance

__all__ = [
    "FORMATS",
    "PRESETS",
    "SCENARIOS",
    "SCHEMA_ROWS",
    "Preset",
    "Scenario",
    "SyntheticImage",
    "crowd_index",
    "generate",
    "occluder_boxes",
    "render_frame",
    "render_to_folder",
    "summarize",
    "write_native",
]

SPLITS = ("train", "val")
_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_SCALE = 1 << _SHIFT
_OCCLUDER_LABEL = 255
_MAX_PEOPLE_PER_FRAME = 254
_GROUP_SIZES = (0.6, 0.3, 0.1)  # probability of a group of 1, 2, 3 people


@dataclass(frozen=True)
class Preset:
    """Size of a synthetic dataset. Heights are in pixels; ranges are inclusive ``(low, high)``."""

    width: int
    height: int
    videos: dict[str, int]
    frames: dict[str, int]
    groups: tuple[int, int]
    tiny_people: tuple[int, int]
    occluders: tuple[int, int]
    min_height: float
    fps: int = 10


SYNTHETIC_MARKER = "crowdbench-synthetic.json"
"""Written next to synthetic data in native formats: results computed from that folder stay labelled ``smoke``."""

PRESETS: dict[str, Preset] = {
    "tiny": Preset(128, 128, {"train": 2, "val": 1}, {"train": 8, "val": 8}, (4, 6), (2, 3), (1, 2), 14.0),
    "small": Preset(160, 160, {"train": 12, "val": 5}, {"train": 30, "val": 20}, (4, 7), (2, 4), (1, 2), 16.0),
    "medium": Preset(256, 256, {"train": 24, "val": 8}, {"train": 40, "val": 30}, (9, 14), (3, 6), (1, 3), 20.0),
    "hie": Preset(128, 128, {"train": 4, "val": 3}, {"train": 12, "val": 12}, (4, 6), (2, 3), (1, 2), 14.0),
    # Stand-ins for the extra detector training data of paper 000 Table 2 (datasets/extra.py), smoke only.
    "crowdhuman_like": Preset(160, 160, {"train": 6, "val": 1}, {"train": 20, "val": 2}, (9, 13), (2, 4), (1, 2), 16.0),
    "coco_like": Preset(160, 160, {"train": 6, "val": 1}, {"train": 20, "val": 2}, (1, 2), (0, 1), (0, 1), 16.0),
    "cityperson_like": Preset(256, 128, {"train": 6, "val": 1}, {"train": 20, "val": 2}, (1, 3), (6, 9), (1, 2), 10.0),
    "self_collected_like": Preset(
        160, 160, {"train": 3, "val": 1}, {"train": 20, "val": 2}, (5, 8), (2, 4), (1, 2), 16.0
    ),
}
"""``tiny``: unit tests; ``small``: default of the smoke profile; ``medium``: a harder, larger variant;
``hie``: several short small videos per split (per-video w-AP and tracking tables on the HIE tree).
``*_like``: synthetic stand-ins of paper 000's extra detector data (not the real data): ``crowdhuman_like`` dense
crowds, ``coco_like`` sparse scenes with few people, ``cityperson_like`` wide street views with many small
pedestrians, ``self_collected_like`` medium crowds (fewer frames, as the real set is the smallest)."""

FORMATS = ("coco", "crowdpose", "crowdhuman", "mot", "hie", "posetrack17", "posetrack18")
"""Native formats :func:`write_native` can write (images are always written)."""


@dataclass(frozen=True)
class Scenario:
    """The mechanisms a smoke dataset contains beyond the plain scene (issue 22). Each knob creates one situation a
    technique claims to handle; a table's scenario is chosen from its rows' mechanisms, once, and stated in its spec.
    Every knob off (``plain``) draws exactly the plain scene: the knobs draw from their own random streams."""

    name: str
    purpose: str  # the mechanism it creates and the techniques (paper, section) it serves
    pair_iou: tuple[float, float] | None = None  # members of a group stand so their full boxes overlap at this IoU
    group_sizes: tuple[float, float, float] = _GROUP_SIZES  # probability of a group of 1, 2, 3 people
    crossing: float = 0.0  # share of walking groups that another group crosses head-on at mid-video
    reentry: int = 0  # wide pillars on walkers' paths: a long full occlusion, then the same identity re-enters
    camera_pan: float = 0.0  # horizontal camera speed, image widths per frame
    camera_zoom: float = 0.0  # zoom change over the whole video (0.2: from 0.9x to 1.1x)
    camera_shake: float = 0.0  # per-frame camera jitter, standard deviation in image widths (i.i.d. per frame)
    motion_blur: float = 0.0  # exposure as a fraction of the frame interval: blur along the camera's motion
    self_occlusion: float = 0.0  # share of people seen in profile: far limbs behind the body, labelled v=1 when hidden
    visible_boxes: bool = False  # person boxes tight around the visible pixels (COCO's boxes), not the full body

    @property
    def camera(self) -> bool:
        return bool(self.camera_pan or self.camera_zoom or self.camera_shake)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("plain", "static camera, groups walking side by side in lockstep, static occluders"),
        Scenario(
            "crowded_pairs",
            "heavily overlapping pairs: groups of two or three whose full boxes overlap at IoU 0.5-0.9, the pairs "
            "NMS suppresses (CrowdDet, Chu et al. CVPR 2020, section 1 and 3.3: EMD loss and set NMS; paper 000 "
            "Table 3) and the crowd of candidate poses OKSFilter and PSM choose among (paper 002, section 3.3-3.4)",
            pair_iou=(0.5, 0.9),
            group_sizes=(0.2, 0.5, 0.3),
        ),
        Scenario(
            "moving_crowd",
            "a hand-held camera (pan, zoom, shake, motion blur) filming groups whose paths cross head-on and walkers "
            "who disappear behind wide pillars and re-enter: frame-to-frame jitter for flow smoothing (paper 004 "
            "section 4.3, paper 003 section 3.4) and identity switches for ReID (paper 004 section 4.3, DeepSORT)",
            crossing=0.6,
            reentry=1,
            camera_pan=0.004,
            camera_zoom=0.15,
            camera_shake=0.01,
            motion_blur=0.5,
        ),
        Scenario(
            "occluded_joints",
            "labelled self-occlusion (people in profile whose far limbs hide behind their body) on top of occluders "
            "and overlapping people: the occluded joints whose constraint cues OA teaches (paper 001, sections 3-4)",
            self_occlusion=0.5,
            pair_iou=(0.5, 0.9),
        ),
        Scenario(
            "cut_boxes",
            "person boxes tight around the visible pixels, as COCO's boxes are, so a detector's box cuts off the "
            "occluded body parts whose joints GBG's larger candidate boxes recover (paper 003, section 3.2)",
            visible_boxes=True,
            pair_iou=(0.5, 0.9),
        ),
    )
}
"""Named smoke scenarios; a spec's ``smoke_scenario`` picks one for all of its rows."""


def _scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown synthetic scenario {name!r}; scenarios: {', '.join(SCENARIOS)}") from None


def _preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown synthetic preset {name!r}; presets: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class _Person:
    track_id: int  # 1-based per video; -1 for tiny background people
    x_mid: float  # foot position at the middle frame
    y_mid: float
    vx: float  # pixels per frame
    vy: float
    height_factor: float
    aspect: float
    facing: int  # +1 walks/looks right, -1 left
    phase: float
    freq: float  # gait cycles per frame
    swing: float  # leg swing amplitude (rad); 0 = standing
    raised_arm: int  # 0 none, +1 left arm up, -1 right arm up
    turn: float  # head turn, fraction of the face width
    colors: np.ndarray  # 6 x 3 uint8 RGB: skin, top, bottom, hair, shoes, sleeve/forearm
    profile: bool = False  # seen from the side: the far arm and leg are drawn behind the body (Scenario.self_occlusion)


@dataclass(frozen=True)
class _Occluder:
    box: tuple[int, int, int, int]  # integer x1, y1, x2, y2 (exclusive)
    color: tuple[int, int, int]
    kind: str  # "pillar" | "crate"


class _Video:
    """Everything needed to draw and annotate one video; randomness is drawn once, here."""

    def __init__(self, preset: Preset, seed: int, split: str, index: int, scenario: Scenario | None = None) -> None:
        self.preset = preset
        self.scenario = scenario or SCENARIOS["plain"]
        self.seed = seed
        self.split = split
        self.index = index
        self.name = f"syn_{split}_{index:03d}"
        self.width, self.height = preset.width, preset.height
        self.n_frames = preset.frames[split]
        self._entropy = [seed, SPLITS.index(split), index]
        self.render_key = (repr(preset), self.scenario, seed, split, index)  # what decides every pixel
        self._background: np.ndarray | None = None
        rng = np.random.default_rng(self._entropy)
        w, h = self.width, self.height
        self.horizon = float(rng.uniform(0.05, 0.2) * h)
        self.k = float(rng.uniform(0.5, 0.68))  # person height = k * (foot y - horizon)
        self.palette = rng.integers(60, 200, size=(4, 3))
        self.occluders = self._make_occluders(rng, w, h)
        people: list[_Person] = []
        for _ in range(int(rng.integers(preset.groups[0], preset.groups[1] + 1))):
            people.extend(self._make_group(rng, len(people) + 1))
        for _ in range(int(rng.integers(preset.tiny_people[0], preset.tiny_people[1] + 1))):
            people.append(self._make_tiny(rng))
        self.people = people
        self._add_mechanisms()
        self.camera = _Camera.of(self)

    # ---- scene construction

    def _make_occluders(self, rng: np.random.Generator, w: int, h: int) -> list[_Occluder]:
        out: list[_Occluder] = []
        for _ in range(int(rng.integers(self.preset.occluders[0], self.preset.occluders[1] + 1))):
            grey = int(rng.integers(70, 190))
            tint = rng.integers(-25, 26, size=3)
            color = tuple(int(np.clip(grey + c, 0, 255)) for c in tint)
            if rng.random() < 0.5:
                bw = round(rng.uniform(0.06, 0.1) * w)
                x1 = int(rng.integers(0, w - bw))
                out.append(_Occluder((x1, 0, x1 + bw, h), color, "pillar"))
            else:
                bw = round(rng.uniform(0.15, 0.3) * w)
                bh = round(rng.uniform(0.12, 0.22) * h)
                x1 = int(rng.integers(0, w - bw))
                y2 = round(rng.uniform(0.85, 1.0) * h)
                out.append(_Occluder((x1, y2 - bh, x1 + bw, y2), color, "crate"))
        return out

    def _colors(self, rng: np.random.Generator) -> np.ndarray:
        skin = np.array([[236, 188, 160], [198, 134, 96], [141, 85, 60], [90, 56, 38], [225, 172, 128]])
        hair = np.array([[30, 22, 18], [80, 50, 30], [150, 110, 60], [200, 190, 170], [60, 40, 35]])
        hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(70, 256)]]], dtype=np.uint8)
        top = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
        bottom = rng.integers(20, 140, size=3) if rng.random() < 0.6 else np.array([40, 50, 110]) + rng.integers(0, 40)
        shoes = rng.integers(10, 90, size=3)
        s = skin[rng.integers(len(skin))]
        sleeve = top if rng.random() < 0.5 else s
        return np.stack([s, top, bottom, hair[rng.integers(len(hair))], shoes, sleeve]).astype(np.uint8)

    def _person(self, rng: np.random.Generator, track_id: int, x: float, y: float, vx: float, vy: float) -> _Person:
        walking = vx != 0.0 or vy != 0.0
        facing = int(np.sign(vx)) if vx != 0 else int(rng.choice([-1, 1]))
        return _Person(
            track_id=track_id,
            x_mid=x,
            y_mid=y,
            vx=vx,
            vy=vy,
            height_factor=float(rng.uniform(0.88, 1.12)),
            aspect=float(rng.uniform(0.8, 1.25)),
            facing=facing,
            phase=float(rng.uniform(0, 2 * math.pi)),
            freq=float(rng.uniform(0.07, 0.11)) if walking else float(rng.uniform(0.01, 0.03)),
            swing=float(rng.uniform(0.3, 0.45)) if walking else 0.0,
            raised_arm=int(rng.choice([-1, 1])) if rng.random() < 0.1 else 0,
            turn=float(rng.uniform(-0.5, 0.5)),
            colors=self._colors(rng),
        )

    def _foot_range(self) -> tuple[float, float]:
        lo = self.horizon + 1.8 * self.preset.min_height / (self.k * 0.88)
        return lo, 1.04 * self.height

    def _make_group(
        self, rng: np.random.Generator, first_id: int, at: tuple[float, float, float, float] | None = None
    ) -> list[_Person]:
        """One to three people walking side by side; ``at``: the leader's foot x, y and velocity (else drawn)."""
        size = int(rng.choice([1, 2, 3], p=self.scenario.group_sizes))
        lo, hi = self._foot_range()
        half = (self.n_frames - 1) / 2
        if at is not None:
            x, y, vx, vy = at
            h = self.k * (y - self.horizon)
        else:
            y = float(rng.uniform(lo + 0.1 * (hi - lo), hi))
            x = float(rng.uniform(0.1, 0.9) * self.width)
            h = self.k * (y - self.horizon)
            if rng.random() < 0.15:
                vx = vy = 0.0
            else:
                vx = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.065) * h)
                # keep the feet inside [lo, hi + slack] for the whole video so sizes stay plausible
                vmax = min(0.15 * abs(vx), (y - lo) / max(half, 1), (hi * 1.06 - y) / max(half, 1))
                vy = float(rng.uniform(-vmax, vmax))
        members = [self._person(rng, first_id, x, y, vx, vy)]
        side = float(rng.choice([-1, 1]))
        for j in range(1, size):
            if self.scenario.pair_iou is not None:
                dx, dy = _pair_offset(rng, h, self.scenario.pair_iou)
            else:
                dy = float(rng.uniform(0.04, 0.16) * h)
                dx = float(rng.uniform(0.04, 0.3) * h)
            dy *= 1 if j % 2 else -1
            dx *= (1 if j < 2 else -1) * side
            yj = float(np.clip(y + dy, lo, hi))
            members.append(self._person(rng, first_id + j, x + dx, yj, vx, vy))
        return members

    def _make_tiny(self, rng: np.random.Generator) -> _Person:
        target = float(rng.uniform(0.45, 0.75) * self.preset.min_height)
        y = self.horizon + target / self.k
        x = float(rng.uniform(0.05, 0.95) * self.width)
        vx = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.05) * target)
        return self._person(rng, -1, x, y, vx, 0.0)

    # ---- scenario mechanisms (each from its own random stream, so the plain scene is unchanged)

    def _add_mechanisms(self) -> None:
        sc = self.scenario
        if sc.crossing:
            self._add_crossings(np.random.default_rng([*self._entropy, 3]), sc.crossing)
        if sc.reentry:
            self._add_reentry_pillars(np.random.default_rng([*self._entropy, 4]), sc.reentry)
        if sc.self_occlusion:
            rng = np.random.default_rng([*self._entropy, 5])
            self.people = [
                replace(p, profile=bool(p.track_id > 0 and rng.random() < sc.self_occlusion)) for p in self.people
            ]

    def _add_crossings(self, rng: np.random.Generator, share: float) -> None:
        """For a ``share`` of the walking groups, a group walking the other way at nearly the same depth, through
        the same point at mid-video: their boxes cross, the nearer group hides the farther one for a few frames."""
        leaders = [p for p in self.people if p.track_id > 0 and p.vx != 0]
        leaders = [p for i, p in enumerate(leaders) if i == 0 or p.track_id != leaders[i - 1].track_id]
        lo, hi = self._foot_range()
        for leader in leaders:
            if rng.random() >= share:
                continue
            h = self.k * (leader.y_mid - self.horizon)
            y = float(np.clip(leader.y_mid + rng.choice([-1, 1]) * rng.uniform(0.03, 0.1) * h, lo, hi))
            x = leader.x_mid + float(rng.uniform(-0.1, 0.1) * h)
            vx = -leader.vx * float(rng.uniform(0.8, 1.2))
            first = max(p.track_id for p in self.people) + 1
            self.people.extend(self._make_group(rng, first, at=(x, y, vx, 0.0)))

    def _add_reentry_pillars(self, rng: np.random.Generator, count: int) -> None:
        """``count`` wide pillars, each on a walker's path: it hides the walker fully for 4-8 frames, then the same
        identity re-enters on the other side (a long occlusion for the tracker's re-identification)."""
        walkers = [p for p in self.people if p.track_id > 0 and p.vx != 0]
        for _ in range(count if walkers else 0):
            p = walkers[int(rng.integers(len(walkers)))]
            t0 = float(rng.uniform(0.35, 0.65) * (self.n_frames - 1))
            fx, _, h = self.foot(p, round(t0))
            width = 0.45 * h * p.aspect + abs(p.vx) * float(rng.uniform(4, 8))
            grey = int(rng.integers(70, 190))
            x1 = round(fx - width / 2)
            self.occluders.append(_Occluder((x1, 0, x1 + max(round(width), 1), self.height), (grey,) * 3, "pillar"))

    # ---- per-frame geometry

    def foot(self, p: _Person, t: int) -> tuple[float, float, float]:
        """Foot x, foot y and body height of ``p`` at frame ``t``."""
        dt = t - (self.n_frames - 1) / 2
        fx, fy = p.x_mid + p.vx * dt, p.y_mid + p.vy * dt
        return fx, fy, p.height_factor * self.k * max(fy - self.horizon, 1.0)

    def background(self) -> np.ndarray:
        """The static scene (``H x W x 3`` uint8 RGB), computed once per video; with a moving camera the world
        canvas every frame is cut from (its pixel (0, 0) is world :attr:`origin`)."""
        if self._background is None:
            self._background = _draw_background(self, np.random.default_rng([*self._entropy, 1]), self.origin)
        return self._background

    @property
    def origin(self) -> tuple[int, int]:
        if self.camera is None:
            return (0, 0)
        lo, _ = self.camera.seen(self.width, self.height)
        return math.floor(lo[0]) - 2, math.floor(lo[1]) - 2

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_background"] = None
        return state


_BOX_ASPECT = 0.53  # mean width / height of the full boxes of generate("small", 0) (train), measured


def _pair_offset(rng: np.random.Generator, h: float, iou: tuple[float, float]) -> tuple[float, float]:
    """Foot offsets ``(dx, dy)`` (pixels, unsigned) of a second group member whose full box overlaps the leader's at
    an IoU drawn from ``iou``: ``dy`` (a slightly different depth) shrinks the vertical overlap by ``r = 1 - dy/H``,
    and for two ``W x H`` boxes ``IoU = (W - dx) r / (2 W - (W - dx) r)``, solved for ``dx``."""
    u = float(rng.uniform(*iou))
    dy = float(rng.uniform(0.02, 0.06) * h)
    r = 1.0 - dy / (1.04 * h)  # full box height: the body plus its margins
    width = _BOX_ASPECT * h
    return max(width * (1.0 - 2.0 * u / (r * (1.0 + u))), 0.0), dy


@dataclass(frozen=True)
class _Camera:
    """A moving camera (``Scenario.camera_*``): frame ``t`` shows ``image = scale[t] * (world - centre[t]) + c0``,
    ``c0`` the image centre; the plain scene is the world seen by a static camera (``scale 1``, ``centre c0``)."""

    centre: np.ndarray  # n x 2, the world point at the image centre
    scale: np.ndarray  # n
    c0: np.ndarray  # image centre

    @classmethod
    def of(cls, video: _Video) -> _Camera | None:
        sc = video.scenario
        if not sc.camera:
            return None
        n, w, h = video.n_frames, video.width, video.height
        rng = np.random.default_rng([*video._entropy, 6])
        t = np.arange(n) - (n - 1) / 2
        pan = float(rng.choice([-1, 1])) * sc.camera_pan * w
        shake = rng.normal(0.0, sc.camera_shake * w, size=(n, 2))
        c0 = np.array([w / 2, h / 2])
        centre = c0 + np.stack([pan * t, np.zeros(n)], axis=1) + shake
        scale = 1.0 + float(rng.choice([-1, 1])) * sc.camera_zoom * t / max(n - 1, 1)
        return cls(centre, scale, c0)

    def apply(self, t: int, points: np.ndarray) -> np.ndarray:
        """World points (``N x 2``) in the image of frame ``t``."""
        return self.scale[t] * (points - self.centre[t]) + self.c0

    def prims(self, t: int, prims: list[Prim]) -> list[Prim]:
        s = self.scale[t]
        out: list[Prim] = []
        for kind, g, c in prims:
            if kind == "poly":
                out.append((kind, self.apply(t, g), c))
            else:
                out.append((kind, np.array([*self.apply(t, g[None, :2])[0], g[2] * s]), c))
        return out

    def seen(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest world point any frame shows."""
        half = np.array([width, height]) / 2 / self.scale[:, None]
        return (self.centre - half).min(axis=0), (self.centre + half).max(axis=0)

    def shift(self, t: int) -> np.ndarray:
        """How far the image content moves from the previous frame to ``t`` (the next one for ``t = 0``)."""
        a, b = (t - 1, t) if t > 0 else (0, 1)
        if b >= len(self.scale):
            return np.zeros(2)
        return -self.scale[a] * (self.centre[b] - self.centre[a])


# ------------------------------------------------------------------------------------------------ geometry

Prim = tuple[str, np.ndarray, int]  # ("poly", N x 2 points, color index) or ("circle", [cx, cy, r], color index)
_SKIN, _TOP, _BOTTOM, _HAIR, _SHOES, _SLEEVE = range(6)


def _limb(a: np.ndarray, b: np.ndarray, half_width: float, color: int) -> Prim:
    d = b - a
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6) * half_width
    return ("poly", np.stack([a + n, b + n, b - n, a - n]), color)


def _circle(c: np.ndarray, r: float, color: int) -> Prim:
    return ("circle", np.array([c[0], c[1], r]), color)


@dataclass(frozen=True)
class _Stance:
    """Where a person stands at one frame: foot point, body height ``h`` (pixels) and gait phase (rad)."""

    fx: float
    fy: float
    h: float
    phase: float

    def at(self, dx: float, u: float) -> np.ndarray:
        """The point ``dx`` heights right of the feet (+x = image right) and ``u`` heights above them."""
        return np.array([self.fx + dx * self.h, self.fy - u * self.h])

    def rot(self, origin: np.ndarray, length: float, angle: float) -> np.ndarray:
        """The end of a segment of ``length`` heights from ``origin``; ``angle`` from straight down, towards +x."""
        return origin + length * self.h * np.array([math.sin(angle), math.cos(angle)])


_Chain = tuple[np.ndarray, np.ndarray, np.ndarray]  # (shoulder, elbow, wrist) or (hip, knee, ankle)


@dataclass(frozen=True)
class _Skeleton:
    """The joints of one person at one frame; ``arms`` and ``legs`` are (left, right)."""

    head: np.ndarray  # centre of the face circle
    neck: np.ndarray
    arms: tuple[_Chain, _Chain]
    legs: tuple[_Chain, _Chain]


def _legs(st: _Stance, p: _Person, hips: tuple[np.ndarray, np.ndarray]) -> tuple[_Chain, _Chain]:
    """Left and right leg: walking swings the thighs in antiphase and bends the back knee; standing sways."""
    s = math.sin(st.phase)
    legs = []
    for hip, sv, side in ((hips[0], s, 1), (hips[1], -s, -1)):
        if p.swing:
            thigh = p.facing * p.swing * sv
            shin = thigh - p.facing * (0.15 + 0.6 * max(0.0, -sv))
        else:
            thigh = shin = 0.05 * side + 0.03 * math.sin(st.phase + side)
        knee = st.rot(hip, 0.245, thigh)
        ankle = st.rot(knee, 0.235, shin)
        legs.append((hip, knee, ankle))
    return legs[0], legs[1]


def _arms(st: _Stance, p: _Person, shoulders: tuple[np.ndarray, np.ndarray]) -> tuple[_Chain, _Chain]:
    """Left and right arm: swinging against the legs, or raised (``p.raised_arm``)."""
    s, d = math.sin(st.phase), p.facing
    arms = []
    for sho, sv, side in ((shoulders[0], s, 1), (shoulders[1], -s, -1)):
        if p.raised_arm == side:
            upper = side * (2.4 + 0.2 * math.sin(2 * st.phase))
            fore = upper + side * 0.35
        else:
            upper = -d * 0.8 * p.swing * sv + side * (0.12 + 0.04 * p.aspect)
            fore = upper + d * (0.2 + 0.25 * max(0.0, sv if d > 0 else -sv))
        elbow = st.rot(sho, 0.18, upper)
        wrist = st.rot(elbow, 0.16, fore)
        arms.append((sho, elbow, wrist))
    return arms[0], arms[1]


def _skeleton(st: _Stance, p: _Person, bob: float, turn: float) -> _Skeleton:
    a = p.aspect * (0.3 if p.profile else 1.0)  # seen from the side, shoulders and hips nearly line up
    shoulders = st.at(0.115 * a, 0.81 + bob), st.at(-0.115 * a, 0.81 + bob)
    hips = st.at(0.07 * a, 0.52 + bob), st.at(-0.07 * a, 0.52 + bob)
    head = st.at(turn * 0.3, 0.925 + bob)
    return _Skeleton(head, (shoulders[0] + shoulders[1]) / 2, _arms(st, p, shoulders), _legs(st, p, hips))


def _body_points(st: _Stance, sk: _Skeleton, bob: float, turn: float) -> np.ndarray:
    """``21 x 2``: COCO-17 (face points from the head turn, then left/right pairs of arm and leg joints),
    :data:`_HEAD_TOP`, :data:`_NECK` and the head box corners."""
    h = st.h
    face = [
        st.at(turn, 0.91 + bob),
        st.at(0.024 + turn, 0.935 + bob),
        st.at(-0.024 + turn, 0.935 + bob),
        st.at(0.061 + turn * 0.3, 0.925 + bob),
        st.at(-0.061 + turn * 0.3, 0.925 + bob),
    ]
    limbs = [side[k] for chains in (sk.arms, sk.legs) for k in range(3) for side in chains]
    head = [
        sk.head + np.array([0.0, -0.014 * h - 0.9 * 0.071 * h]),  # just inside the top of the hair
        sk.neck,
        sk.head + np.array([-0.071 * h, -0.085 * h]),  # head box (hair and face circles): top left
        sk.head + np.array([0.071 * h, 0.066 * h]),  # bottom right
    ]
    return np.stack([*face, *limbs, *head])


def _leg_prims(st: _Stance, p: _Person, leg: _Chain) -> list[Prim]:
    h, a = st.h, p.aspect
    hip, knee, ankle = leg
    bottom_lower = _SKIN if p.colors[_BOTTOM].sum() > 300 else _BOTTOM  # light "trousers" read as shorts
    return [
        _limb(hip, knee, 0.034 * h * a, _BOTTOM),
        _circle(knee, 0.03 * h * a, _BOTTOM),
        _limb(knee, ankle, 0.027 * h * a, bottom_lower),
        _limb(ankle, ankle + h * np.array([0.055 * p.facing, 0.025]), 0.016 * h, _SHOES),
    ]


def _arm_prims(st: _Stance, p: _Person, arm: _Chain) -> list[Prim]:
    h, a = st.h, p.aspect
    sho, elbow, wrist = arm
    return [
        _circle(sho, 0.03 * h * a, _TOP),
        _limb(sho, elbow, 0.024 * h * a, _TOP),
        _circle(elbow, 0.021 * h * a, _SLEEVE),
        _limb(elbow, wrist, 0.02 * h * a, _SLEEVE),
        _circle(wrist, 0.022 * h, _SKIN),
    ]


def _far_side(p: _Person) -> int:
    """The side (0 left, 1 right) turned away from the camera by a person in profile: walking towards +x, the
    right side faces the camera."""
    return 0 if p.facing > 0 else 1


def _body_prims(st: _Stance, p: _Person, sk: _Skeleton) -> tuple[list[Prim], int]:
    """Drawing primitives far to near within the body, and how many of them, first, are the far limbs of a person
    in profile (0 otherwise): legs and shoes, torso, neck, arms, hair, face; in profile the far arm and leg come
    first, behind everything else."""
    h, a = st.h, p.aspect
    far = _far_side(p) if p.profile else None
    prims: list[Prim] = []
    if far is not None:
        prims += _arm_prims(st, p, sk.arms[far]) + _leg_prims(st, p, sk.legs[far])
    n_far = len(prims)
    for side, leg in enumerate(sk.legs):
        if side != far:
            prims += _leg_prims(st, p, leg)
    l_sho, r_sho, l_hip, r_hip = sk.arms[0][0], sk.arms[1][0], sk.legs[0][0], sk.legs[1][0]
    hips_w, sho_w = np.array([0.03 * h * a, 0.0]), np.array([0.03 * h * a, 0.0])
    up = np.array([0.0, -0.015 * h])
    prims.append(("poly", np.stack([l_sho + sho_w + up, r_sho - sho_w + up, r_hip - hips_w, l_hip + hips_w]), _TOP))
    prims.append(_limb(sk.neck, sk.neck + np.array([0.0, -0.07 * h]), 0.025 * h * a, _SKIN))
    for side, arm in enumerate(sk.arms):
        if side != far:
            prims += _arm_prims(st, p, arm)
    prims.append(_circle(sk.head + np.array([0.0, -0.014 * h]), 0.071 * h, _HAIR))
    prims.append(_circle(sk.head, 0.066 * h, _SKIN))
    return prims, n_far


def _body(video: _Video, p: _Person, t: int) -> tuple[np.ndarray, list[Prim], int]:
    """Body points (:func:`_body_points`), the drawing primitives of person ``p`` at frame ``t`` (world
    coordinates) and how many of them are far limbs (:func:`_body_prims`)."""
    st = _Stance(*video.foot(p, t), p.phase + 2 * math.pi * p.freq * t)
    bob = 0.008 * abs(math.cos(st.phase)) if p.swing else 0.0
    turn = 0.045 * p.facing if p.profile else 0.02 * p.turn + 0.01 * p.facing
    sk = _skeleton(st, p, bob, turn)
    prims, n_far = _body_prims(st, p, sk)
    return _body_points(st, sk, bob, turn), prims, n_far


def _extent(prims: Sequence[Prim]) -> np.ndarray:
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for kind, g, _ in prims:
        if kind == "poly":
            lo, hi = np.minimum(lo, g.min(axis=0)), np.maximum(hi, g.max(axis=0))
        else:
            lo, hi = np.minimum(lo, g[:2] - g[2]), np.maximum(hi, g[:2] + g[2])
    return np.concatenate([lo, hi])


def _fixed(points: np.ndarray) -> np.ndarray:
    # continuous coordinates (pixel j spans [j, j+1)) -> OpenCV pixel-centre coordinates, fixed point
    return np.round((points - 0.5) * _SCALE).astype(np.int32)


def _draw(canvas: np.ndarray, prims: Sequence[Prim], colors: Callable[[int], tuple], line: int) -> None:
    for kind, g, c in prims:
        color = colors(c)
        if kind == "poly":
            cv2.fillConvexPoly(canvas, _fixed(g), color, line, _SHIFT)
        else:
            center = _fixed(g[:2])
            radius = max(round(g[2] * _SCALE), 1)
            cv2.circle(canvas, (int(center[0]), int(center[1])), radius, color, -1, line, _SHIFT)


@dataclass
class _Placed:
    person: _Person
    kpts: np.ndarray
    prims: list[Prim]
    box: np.ndarray  # full box with margin, unclipped
    foot_y: float
    scale: float = 1.0  # the camera's zoom at this frame (pixels per world pixel)
    n_far: int = 0  # the first prims are the far limbs of a person in profile (_body_prims)


def _place(video: _Video, t: int) -> list[_Placed]:
    """People touching the image at frame ``t``, in drawing order (far to near, then by track id)."""
    out = []
    cam, scale = video.camera, 1.0
    for p in video.people:
        kpts, prims, n_far = _body(video, p, t)
        if cam is not None:
            kpts, prims, scale = cam.apply(t, kpts), cam.prims(t, prims), float(cam.scale[t])
        ext = _extent(prims)
        _, fy, h = video.foot(p, t)
        margin = max(1.0, 0.02 * h * scale)
        box = ext + np.array([-margin, -margin, margin, margin])
        if box[2] <= 0 or box[0] >= video.width or box[3] <= 0 or box[1] >= video.height:
            continue
        out.append(_Placed(p, kpts, prims, box, fy, scale, n_far))
    out.sort(key=lambda q: (q.foot_y, q.person.track_id))
    return out[:_MAX_PEOPLE_PER_FRAME]


def _frame_occluders(video: _Video, t: int) -> list[_Occluder]:
    """The occluders as frame ``t`` shows them (moved by the camera; pillars always span the image height)."""
    cam = video.camera
    if cam is None:
        return video.occluders
    out = []
    for occ in video.occluders:
        (x1, y1), (x2, y2) = np.round(cam.apply(t, np.array(occ.box, dtype=np.float64).reshape(2, 2))).astype(int)
        if occ.kind == "pillar":
            y1, y2 = 0, video.height
        out.append(replace(occ, box=(int(x1), int(y1), int(x2), int(y2))))
    return out


def _draw_occluders(canvas: np.ndarray, video: _Video, t: int, label: int | None = None) -> None:
    for occ in _frame_occluders(video, t):
        x1, y1, x2, y2 = occ.box
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), label if label is not None else occ.color, -1)
        if label is not None:
            continue
        dark = tuple(int(c * 0.7) for c in occ.color)
        light = tuple(int(min(255, c * 1.2 + 10)) for c in occ.color)
        if occ.kind == "pillar":
            bw = x2 - x1
            cv2.rectangle(canvas, (x1 + bw // 4, y1), (x1 + bw // 4 + max(bw // 6, 1) - 1, y2 - 1), light, -1)
            cv2.rectangle(canvas, (x2 - max(bw // 5, 1), y1), (x2 - 1, y2 - 1), dark, -1)
        else:
            for yy in range(y1 + 2, y2 - 1, max((y2 - y1) // 3, 2)):
                cv2.line(canvas, (x1, yy), (x2 - 1, yy), dark, 1)
            cv2.line(canvas, (x1, y1), (x2 - 1, y2 - 1), dark, 1)


# ------------------------------------------------------------------------------------------------- images


def _draw_background(video: _Video, rng: np.random.Generator, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The static scene; with a moving camera, a larger world canvas whose pixel (0, 0) is world ``origin``."""
    w, h, hz = video.width, video.height, round(video.horizon)
    if video.camera is not None:
        _, hi = video.camera.seen(w, h)
        w, h = math.ceil(hi[0]) + 2 - origin[0], math.ceil(hi[1]) + 2 - origin[1]
        hz = round(video.horizon) - origin[1]
    wall, floor, clutter_a, clutter_b = (c.astype(np.float32) for c in video.palette)
    img = np.empty((h, w, 3), np.float32)
    img[:hz] = wall
    img[hz:] = floor
    # windows / panels on the wall
    img_u8 = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, max(hz - 2, 1)))
        x2, y2 = x1 + int(rng.integers(4, 20)), y1 + int(rng.integers(2, 8))
        cv2.rectangle(img_u8, (x1, y1), (x2, y2), clutter_b.tolist(), -1)
    # perspective floor tiles: lines converging to a vanishing point on the horizon
    vx = float(rng.uniform(0.2, 0.8) * w)
    line_col = (floor * 0.75).tolist()
    for xb in np.arange(-2 * w, 3 * w, rng.uniform(0.08, 0.16) * w):
        cv2.line(img_u8, (int(vx), hz), (int(xb), h * 3), line_col, 1, cv2.LINE_AA)
    y, step = float(hz + 2), 2.0
    while y < h:
        cv2.line(img_u8, (0, int(y)), (w - 1, int(y)), line_col, 1, cv2.LINE_AA)
        step *= 1.45
        y += step
    # static clutter: bins, signs, plants, poles (distractors for the detector)
    for _ in range(int(rng.integers(3, 8))):
        col = (clutter_a + rng.integers(-40, 41, size=3)).clip(0, 255).tolist()
        cx, cy = int(rng.integers(0, w)), int(rng.integers(hz, h))
        size = int(rng.uniform(0.02, 0.08) * h * (0.3 + (cy - hz) / max(h - hz, 1)))
        kind = int(rng.integers(3))
        if kind == 0:
            cv2.ellipse(img_u8, (cx, cy), (size, max(size // 2, 1)), 0, 0, 360, col, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img_u8, (cx - size // 2, cy - size), (cx + size // 2, cy), col, -1)
        else:
            cv2.line(img_u8, (cx, cy), (cx, cy - 4 * size), col, max(size // 4, 1), cv2.LINE_AA)
    img = img_u8.astype(np.float32)
    # low- and mid-frequency texture
    for cells, amp in ((8, 20.0), (2, 9.0)):
        noise = rng.normal(size=(h // cells + 2, w // cells + 2, 3)).astype(np.float32)
        noise = 0.85 * noise[..., :1] + 0.3 * noise  # mostly brightness, a little colour
        img += amp * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def _view(video: _Video, t: int) -> np.ndarray:
    """The background as frame ``t`` shows it: the static scene, or the camera's view of the world canvas."""
    cam = video.camera
    if cam is None:
        return video.background().copy()
    s, (cx, cy), (ox, oy) = float(cam.scale[t]), cam.centre[t], video.origin
    # image = s * (canvas + origin - centre) + c0, in OpenCV's pixel-centre coordinates (continuous - 0.5)
    tx = s * (ox - cx) + cam.c0[0] + 0.5 * s - 0.5
    ty = s * (oy - cy) + cam.c0[1] + 0.5 * s - 0.5
    matrix = np.array([[s, 0.0, tx], [0.0, s, ty]])
    size = (video.width, video.height)
    return cv2.warpAffine(video.background(), matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_blur(img: np.ndarray, video: _Video, t: int) -> np.ndarray:
    """Blur along the camera's motion over ``Scenario.motion_blur`` of the frame interval (a line kernel)."""
    exposure = video.scenario.motion_blur
    if not exposure or video.camera is None:
        return img
    d = video.camera.shift(t) * exposure
    length = float(np.hypot(*d))
    if length < 1.0:  # under a pixel: nothing to smear
        return img
    n = math.ceil(length)
    kernel = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
    for a in np.linspace(-0.5, 0.5, 2 * n + 1):
        kernel[round(n + a * d[1]), round(n + a * d[0])] += 1.0
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def render_frame(video: _Video, t: int) -> np.ndarray:
    """Render frame ``t`` of ``video`` as ``H x W x 3`` uint8 RGB (deterministic)."""
    img = _view(video, t)
    for q in _place(video, t):
        colors = q.person.colors
        _draw(img, q.prims, lambda c, colors=colors: tuple(int(v) for v in colors[c]), cv2.LINE_AA)
        h = video.foot(q.person, t)[2] * q.scale
        if h >= 40:  # eyes on larger people
            for eye in _fixed(q.kpts[1:3]):
                cv2.circle(
                    img, (int(eye[0]), int(eye[1])), int(0.009 * h * _SCALE), (20, 20, 20), -1, cv2.LINE_AA, _SHIFT
                )
    _draw_occluders(img, video, t)
    img = _motion_blur(img, video, t)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    rng = np.random.default_rng([*video._entropy, 2, t])
    noisy = img.astype(np.float32) * float(rng.uniform(0.95, 1.05)) + rng.normal(0.0, 4.0, size=img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


class _RenderedFrames:
    """Least-recently-used rendered frames of this process, up to ``budget`` bytes. Training reads each frame many
    times (a detector's 300 iterations of 4 images read the 360 frames of ``small`` 3.3 times, and every row of a
    table reads them again); a frame is rendered once. Rendering is deterministic, so a cached frame is the frame."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self.frames: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, video: _Video, t: int) -> np.ndarray:
        key = (video.render_key, t)
        with self.lock:
            image = self.frames.get(key)
            if image is not None:
                self.frames.move_to_end(key)
                return image.copy()  # the caller may write into it
        image = render_frame(video, t)
        with self.lock:
            if key not in self.frames:
                self.frames[key] = image
                self.used += image.nbytes
            while self.used > self.budget and self.frames:
                self.used -= self.frames.popitem(last=False)[1].nbytes
        return image.copy()


_RENDERED = _RenderedFrames(budget=256 << 20)


@dataclass(frozen=True)
class SyntheticImage:
    """Zero-argument loader of one synthetic frame (the ``Frame.image`` of generated frames)."""

    video: _Video
    index: int

    def __call__(self) -> np.ndarray:
        return _RENDERED.get(self.video, self.index)


def occluder_boxes(frame: Frame) -> np.ndarray:
    """``M x 4`` boxes (x1, y1, x2, y2) of the static occluders of a generated frame."""
    if not isinstance(frame.image, SyntheticImage):
        raise TypeError(f"frame {frame.frame_id} is not a generated synthetic frame")
    occluders = _frame_occluders(frame.image.video, frame.image.index)
    return np.array([o.box for o in occluders], dtype=np.float64).reshape(-1, 4)


# ------------------------------------------------------------------------------------------- annotations


_HEAD_TOP, _NECK, _HEAD_BOX = 17, 18, [19, 20]  # rows of the body points after the COCO-17 ones
SCHEMA_ROWS: dict[str, tuple[int | None, ...]] = {
    COCO_17.name: tuple(range(17)),
    CROWDPOSE_14.name: (*range(5, 17), _HEAD_TOP, _NECK),
    HIE_14.name: (0, _NECK, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15),
    POSETRACK_17.name: (0, _NECK, _HEAD_TOP, None, None, *range(5, 17)),
}
"""Body-point row of each keypoint of each schema. Every joint is a real point of the stick figure (CrowdPose
``head``/``neck``, HIE ``chest``, PoseTrack ``head_bottom``/``head_top`` included), with its own visibility from
the label map; ``None`` is a joint the dataset never labels (the PoseTrack18 ear slots), written ``(0, 0, 0)``."""


_FAR_ROWS = ((1, 3, 5, 7, 9, 11, 13, 15), (2, 4, 6, 8, 10, 12, 14, 16))
"""Body-point rows of the left and right side (COCO-17 order: eye, ear, shoulder, elbow, wrist, hip, knee, ankle)."""


def _self_hidden(q: _Placed, shape: tuple[int, int]) -> set[int]:
    """Body rows of a person in profile hidden by their own body: the far eye and ear always (the head is between
    them and the camera), the far limb joints where the nearer body parts (drawn after them) cover the point."""
    if not q.n_far:
        return set()
    near = np.zeros(shape, np.uint8)
    _draw(near, q.prims[q.n_far :], lambda _c: (1,), cv2.LINE_8)
    rows = _FAR_ROWS[_far_side(q.person)]
    hidden = set(rows[:2])
    for row in rows[2:]:
        x, y = q.kpts[row]
        if 0 <= x < shape[1] and 0 <= y < shape[0] and near[int(y), int(x)]:
            hidden.add(row)
    return hidden


def _annotate(video: _Video, t: int, body_rows: tuple[int | None, ...] = SCHEMA_ROWS[COCO_17.name]) -> Frame:
    w, h = video.width, video.height
    placed = _place(video, t)
    label = np.zeros((h, w), np.uint8)
    for j, q in enumerate(placed):
        _draw(label, q.prims, lambda _c, j=j: (j + 1,), cv2.LINE_8)
    _draw_occluders(label, video, t, _OCCLUDER_LABEL)
    instances: list[Instance] = []
    ignore: list[np.ndarray] = []
    for j, q in enumerate(placed):
        box = q.box
        x0, y0 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
        x1, y1 = min(math.ceil(box[2]), w), min(math.ceil(box[3]), h)
        mine = label[y0:y1, x0:x1] == j + 1
        n_visible = int(mine.sum())
        if box[3] - box[1] < video.preset.min_height:
            if n_visible > 0:
                ignore.append(np.clip(box, 0, [w, h, w, h]))
            continue
        if n_visible < max(6.0, 0.03 * (box[2] - box[0]) * (box[3] - box[1])):
            continue
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        vbox = np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], dtype=np.float64)
        kpts = np.zeros((len(body_rows), 3))
        hidden = _self_hidden(q, label.shape)
        for k, row in enumerate(body_rows):
            if row is None:
                continue
            x, y = q.kpts[row]
            if 0 <= x < w and 0 <= y < h:
                seen = label[int(y), int(x)]
                covered = seen == _OCCLUDER_LABEL or (seen != 0 and seen != j + 1) or row in hidden
                kpts[k] = (x, y, 1.0 if covered else 2.0)
        head = q.kpts[_HEAD_BOX].reshape(4)
        if video.scenario.visible_boxes:  # COCO-style: the box of the visible pixels, with the same margin
            margin = max(1.0, 0.02 * (box[3] - box[1]))
            box = vbox + np.array([-margin, -margin, margin, margin])
        instances.append(Instance(box=box, visible_box=vbox, keypoints=kpts, track_id=q.person.track_id, head_box=head))
    return Frame(
        video=video.name,
        index=t,
        width=w,
        height=h,
        image=SyntheticImage(video, t),
        instances=instances,
        ignore_regions=np.stack(ignore) if ignore else np.zeros((0, 4)),
    )


def _iou_matrix(boxes: np.ndarray) -> np.ndarray:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    return inter / (area[:, None] + area[None, :] - inter)


def summarize(frames: Sequence[Frame]) -> dict[str, float | int]:
    """Crowding statistics of some frames (the per-split entries of ``Dataset.summary``)."""
    n_inst = n_crowded = n_labeled = n_occluded = n_ignore = 0
    tracks: set[tuple[str, int]] = set()
    for f in frames:
        n_inst += len(f.instances)
        n_ignore += len(f.ignore_regions)
        tracks.update((f.video, i.track_id) for i in f.instances)
        if len(f.instances) > 1:
            iou = _iou_matrix(f.boxes())
            np.fill_diagonal(iou, 0.0)
            n_crowded += int((iou.max(axis=1) > 0.5).sum())
        for i in f.instances:
            v = i.keypoints[:, 2]
            n_labeled += int((v > 0).sum())
            n_occluded += int((v == 1).sum())
    return {
        "frames": len(frames),
        "videos": len({f.video for f in frames}),
        "people": n_inst,
        "tracks": len(tracks),
        "people_per_frame": round(n_inst / max(len(frames), 1), 3),
        "share_iou_gt_0.5": round(n_crowded / max(n_inst, 1), 4),
        "share_occluded_keypoints": round(n_occluded / max(n_labeled, 1), 4),
        "ignore_regions": n_ignore,
    }


def generate(
    preset: str = "small",
    seed: int = 0,
    schema: str = COCO_17.name,
    scenario: str = "plain",
    val_videos: int | None = None,
) -> Dataset:
    """Generate the synthetic crowd-video dataset ``preset`` (splits ``train`` and ``val``).

    ``schema`` (``coco17``, ``crowdpose14``, ``hie14``, ``posetrack17``) picks the keypoints annotated
    (:data:`SCHEMA_ROWS`); boxes, tracks and images do not depend on it. ``scenario`` (:data:`SCENARIOS`) adds the
    mechanisms a table's techniques need. Annotations are computed now; images are rendered when
    ``Frame.load_image()`` is called. ``val_videos`` generates that many validation videos instead of the
    preset's; video ``i`` is the same whatever the count, so the preset's videos come first.
    """
    spec = _preset(preset)
    if val_videos is not None:
        if val_videos < 1:
            raise ValueError(f"val_videos must be >= 1, got {val_videos}")
        spec = replace(spec, videos={**spec.videos, "val": val_videos})
    mechanisms = _scenario(scenario)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if schema not in SCHEMA_ROWS:
        raise ValueError(f"unknown keypoint schema {schema!r}; known: {', '.join(SCHEMA_ROWS)}")
    rows = SCHEMA_ROWS[schema]
    splits: dict[str, list[Frame]] = {}
    for split in SPLITS:
        frames: list[Frame] = []
        for v in range(spec.videos[split]):
            video = _Video(spec, seed, split, v, mechanisms)
            frames.extend(_annotate(video, t, rows) for t in range(video.n_frames))
        splits[split] = frames
    summary: dict[str, float | int | str] = {
        "preset": preset,
        "seed": seed,
        "schema": schema,
        "scenario": scenario,
        "width": spec.width,
        "height": spec.height,
    }
    if val_videos is not None:
        summary["val_videos"] = val_videos
    summary.update(summarize([f for frames in splits.values() for f in frames]))
    for split, frames in splits.items():
        summary.update({f"{split}/{k}": v for k, v in summarize(frames).items()})
    name = f"synthetic-{preset}" if scenario == "plain" else f"synthetic-{preset}-{scenario}"
    return Dataset(name=name, schema=get_schema(schema), splits=splits, summary=summary)


# -------------------------------------------------------------------------------------------------- files


def _image_path(out_dir: Path, split: str, frame: Frame, ext: str) -> Path:
    return out_dir / split / frame.video / "img1" / f"{frame.index + 1:06d}{ext}"


def render_to_folder(dataset: Dataset, out_dir: str | Path, ext: str = ".jpg") -> Dataset:
    """Write every frame as ``<out_dir>/<split>/<video>/img1/<index+1:06d><ext>`` (MOTChallenge layout).

    Returns a copy of ``dataset`` whose frames' ``image`` is the written path. Each file is written to a
    temporary name, then renamed (existing files are replaced).
    """
    if ext not in (".jpg", ".png"):
        raise ValueError(f"ext must be .jpg or .png, got {ext!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    out_dir = Path(out_dir)
    splits: dict[str, list[Frame]] = {}
    for split, frames in dataset:
        written = []
        for frame in frames:
            path = _image_path(out_dir, split, frame, ext)
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(ext, cv2.cvtColor(frame.load_image(), cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise OSError(f"could not encode {path}")
            atomic_write_bytes(path, buf.tobytes())
            written.append(replace(frame, image=path))
        splits[split] = written
    return Dataset(name=dataset.name, schema=dataset.schema, splits=splits, summary=dict(dataset.summary))


@dataclass(frozen=True)
class _NativeOut:
    """One :func:`write_native` call: the dataset, its copy with written images, and where the files go."""

    dataset: Dataset
    rendered: Dataset
    out_dir: Path
    ext: str
    fps: int

    def in_schema(self, split: str, schema: str) -> list[Frame]:
        """The rendered frames of ``split`` with keypoints annotated in ``schema`` (same people, boxes, tracks)."""
        frames = self.rendered.frames(split)
        if self.dataset.schema.name == schema:
            return frames
        summary = self.dataset.summary
        if summary.get("preset") not in PRESETS or "seed" not in summary:
            raise ValueError(f"{self.dataset.name}: not a generated dataset, cannot annotate it in {schema}")
        scenario = str(summary.get("scenario", "plain"))
        val = summary.get("val_videos")
        val_videos = None if val is None else int(val)
        other = _regenerated(str(summary["preset"]), int(summary["seed"]), schema, scenario, val_videos).frames(split)
        return [
            replace(
                f, instances=[replace(i, keypoints=o.keypoints) for i, o in zip(f.instances, g.instances, strict=True)]
            )
            for f, g in zip(frames, other, strict=True)
        ]

    def link_images(self, split: str, folder: Callable[[Frame], Path]) -> None:
        """Hard-link every image of ``split`` as ``folder(frame) / <index:06d><ext>``."""
        for frame in self.rendered.frames(split):
            _link(Path(str(frame.image)), folder(frame) / f"{frame.index:06d}{self.ext}")


def _write_coco(out: _NativeOut, split: str) -> dict[str, Path]:
    path = out.out_dir / "annotations" / f"person_keypoints_{split}.json"
    frames = out.rendered.frames(split)
    return {f"coco_{split}": write_coco_keypoints(frames, path, out.dataset.schema, image_root=out.out_dir)}


def _write_crowdpose(out: _NativeOut, split: str) -> dict[str, Path]:
    cp = out.in_schema(split, CROWDPOSE_14.name)
    extras = [{"crowdIndex": round(crowd_index(f), 4)} for f in cp]
    cp = CocoFrames(cp, schema=CROWDPOSE_14, image_ids=range(1, len(cp) + 1), image_extras=extras)
    path = out.out_dir / "crowdpose" / "json" / f"crowdpose_{split}.json"
    return {f"crowdpose_{split}": write_coco_keypoints(cp, path, CROWDPOSE_14, image_root=out.out_dir)}


def _write_crowdhuman(out: _NativeOut, split: str) -> dict[str, Path]:
    frames = out.rendered.frames(split)
    odgt = out.out_dir / f"annotation_{split}.odgt"
    write_odgt(frames, odgt)
    if out.ext == ".jpg":
        for frame in frames:
            _link(Path(str(frame.image)), out.out_dir / "Images" / f"{record_id(frame)}.jpg")
    return {f"odgt_{split}": odgt}


def _write_mot(out: _NativeOut, split: str) -> dict[str, Path]:
    for video, vframes in out.rendered.videos(split).items():
        write_mot_sequence(vframes, out.out_dir / split / video, frame_rate=out.fps, im_ext=out.ext)
    return {f"mot_{split}": out.out_dir / split}


def _write_hie(out: _NativeOut, split: str) -> dict[str, Path]:
    hie_root = out.out_dir / "hie" / split
    hie_videos = Dataset(out.dataset.name, HIE_14, {split: out.in_schema(split, HIE_14.name)}).videos(split)
    write_hie(hie_videos, hie_root, image_ext=out.ext)
    out.link_images(split, lambda frame: hie_root / "images" / frame.video)
    return {f"hie_{split}": hie_root}


def _write_posetrack(out: _NativeOut, split: str, version: str) -> dict[str, Path]:
    # deferred: start-up (scipy)
    from crowdbench.datasets.formats.posetrack import write_posetrack

    pt_root = out.out_dir / version
    pt_frames = out.in_schema(split, POSETRACK_17.name)
    videos = Dataset(out.dataset.name, POSETRACK_17, {split: pt_frames}).videos(split)
    write_posetrack(videos, pt_root / "annotations" / split, "20" + version[-2:], image_dir=f"images/{split}")
    out.link_images(split, lambda frame: pt_root / "images" / split / frame.video)
    return {f"{version}_{split}": pt_root / "annotations" / split}


_NATIVE_WRITERS: dict[str, Callable[[_NativeOut, str], dict[str, Path]]] = {
    "coco": _write_coco,
    "crowdpose": _write_crowdpose,
    "crowdhuman": _write_crowdhuman,
    "mot": _write_mot,
    "hie": _write_hie,
    "posetrack17": functools.partial(_write_posetrack, version="posetrack17"),
    "posetrack18": functools.partial(_write_posetrack, version="posetrack18"),
}
"""The writer of each of :data:`FORMATS` (in that order): the paths it wrote for one split, by key."""


def write_native(
    dataset: Dataset, out_dir: str | Path, ext: str = ".jpg", formats: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write images and every native format of ``dataset`` under ``out_dir``.

    Layout: ``<split>/<video>/{img1/,gt/gt.txt,seqinfo.ini}`` (MOTChallenge),
    ``annotations/person_keypoints_<split>.json`` (COCO keypoints, ``file_name`` relative to ``out_dir``,
    PoseTrack-style ``frame_id``/``vid_id``/``track_id`` extras) and ``annotation_<split>.odgt`` with
    ``Images/<ID>.jpg`` (CrowdHuman layout, hard links to the same JPEGs), so ``out_dir`` also works as a
    ``--data-root`` for the ``full`` profile. Also ``hie/<split>/`` (HIE tree, keypoints converted to HIE-14,
    images hard-linked under ``hie/<split>/images``). ``formats`` restricts the formats written (default
    :data:`FORMATS`, all; each format's writer is in :data:`_NATIVE_WRITERS`). Returns the written paths by key
    (``images``, ``coco_<split>``, ``odgt_<split>``, ``mot_<split>``, ``hie_<split>``).
    """
    wanted = set(FORMATS if formats is None else formats)
    if wanted - set(FORMATS) or not wanted:
        raise ValueError(f"unknown or no formats {sorted(wanted - set(FORMATS))}; known: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    rendered = render_to_folder(dataset, out_dir, ext)
    marker = {"generator": "crowdbench.datasets.synthetic", "name": dataset.name, "summary": dataset.summary}
    atomic_write_text(out_dir / SYNTHETIC_MARKER, json.dumps(marker, indent=1, default=str))
    fps = PRESETS[str(dataset.summary["preset"])].fps if dataset.summary.get("preset") in PRESETS else 10
    out = _NativeOut(dataset, rendered, out_dir, ext, fps)
    paths: dict[str, Path] = {"images": out_dir}
    for split in rendered.splits:
        for name in FORMATS:
            if name in wanted:
                paths.update(_NATIVE_WRITERS[name](out, split))
    return paths


@functools.lru_cache(maxsize=4)
def _regenerated(preset: str, seed: int, schema: str, scenario: str, val_videos: int | None) -> Dataset:
    return generate(preset, seed, schema, scenario, val_videos)


def crowd_index(frame: Frame) -> float:
    """CrowdPose crowd index of one image (Li et al., CVPR 2019, "CrowdPose", section 3.1):
    ``(1/n) sum_i N_b(i) / N_a(i)``, with ``N_a(i)`` the labeled joints of person ``i`` and ``N_b(i)`` the
    labeled joints of the other people inside person ``i``'s box. People without labeled joints are skipped;
    0 for an image without people. The formula exceeds 1 where several people overlap one box; CrowdPose's
    published values lie in [0, 1] (``shared/reference/metrics.md`` section 2), so it is clipped to 1, which
    keeps the easy / medium / hard split (hard: >= 0.8) and lets the file pass the ``crowdIndex`` range check."""
    people = [i for i in frame.instances if i.keypoints is not None and (i.keypoints[:, 2] > 0).any()]
    ratios = []
    for a, inst in enumerate(people):
        x1, y1, x2, y2 = inst.box
        n_a = int((inst.keypoints[:, 2] > 0).sum())
        n_b = 0
        for b, other in enumerate(people):
            if b == a:
                continue
            kp = other.keypoints[other.keypoints[:, 2] > 0]
            n_b += int(((kp[:, 0] >= x1) & (kp[:, 0] <= x2) & (kp[:, 1] >= y1) & (kp[:, 1] <= y2)).sum())
        ratios.append(n_b / n_a)
    return min(float(np.mean(ratios)), 1.0) if ratios else 0.0


def _link(src: Path, dst: Path) -> None:
    """Hard link ``dst`` to ``src`` (a copy where links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
