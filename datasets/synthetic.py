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
    "SCHEMA_ROWS",
    "Preset",
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


@dataclass(frozen=True)
class _Occluder:
    box: tuple[int, int, int, int]  # integer x1, y1, x2, y2 (exclusive)
    color: tuple[int, int, int]
    kind: str  # "pillar" | "crate"


class _Video:
    """Everything needed to draw and annotate one video; randomness is drawn once, here."""

    def __init__(self, preset: Preset, seed: int, split: str, index: int) -> None:
        self.preset = preset
        self.seed = seed
        self.split = split
        self.index = index
        self.name = f"syn_{split}_{index:03d}"
        self.width, self.height = preset.width, preset.height
        self.n_frames = preset.frames[split]
        self._entropy = [seed, SPLITS.index(split), index]
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

    def _make_group(self, rng: np.random.Generator, first_id: int) -> list[_Person]:
        size = int(rng.choice([1, 2, 3], p=_GROUP_SIZES))
        lo, hi = self._foot_range()
        y = float(rng.uniform(lo + 0.1 * (hi - lo), hi))
        x = float(rng.uniform(0.1, 0.9) * self.width)
        h = self.k * (y - self.horizon)
        half = (self.n_frames - 1) / 2
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
            dy = float(rng.uniform(0.04, 0.16) * h) * (1 if j % 2 else -1)
            dx = float(rng.uniform(0.04, 0.3) * h) * (1 if j < 2 else -1) * side
            yj = float(np.clip(y + dy, lo, hi))
            members.append(self._person(rng, first_id + j, x + dx, yj, vx, vy))
        return members

    def _make_tiny(self, rng: np.random.Generator) -> _Person:
        target = float(rng.uniform(0.45, 0.75) * self.preset.min_height)
        y = self.horizon + target / self.k
        x = float(rng.uniform(0.05, 0.95) * self.width)
        vx = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.05) * target)
        return self._person(rng, -1, x, y, vx, 0.0)

    # ---- per-frame geometry

    def foot(self, p: _Person, t: int) -> tuple[float, float, float]:
        """Foot x, foot y and body height of ``p`` at frame ``t``."""
        dt = t - (self.n_frames - 1) / 2
        fx, fy = p.x_mid + p.vx * dt, p.y_mid + p.vy * dt
        return fx, fy, p.height_factor * self.k * max(fy - self.horizon, 1.0)

    def background(self) -> np.ndarray:
        """The static scene (``H x W x 3`` uint8 RGB), computed once per video."""
        if self._background is None:
            self._background = _draw_background(self, np.random.default_rng([*self._entropy, 1]))
        return self._background

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_background"] = None
        return state


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
    a = p.aspect
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


def _body_prims(st: _Stance, p: _Person, sk: _Skeleton) -> list[Prim]:
    """Drawing primitives far to near within the body: legs and shoes, torso, neck, arms, hair, face."""
    h, a, d = st.h, p.aspect, p.facing
    prims: list[Prim] = []
    bottom_lower = _SKIN if p.colors[_BOTTOM].sum() > 300 else _BOTTOM  # light "trousers" read as shorts
    for hip, knee, ankle in sk.legs:
        prims.append(_limb(hip, knee, 0.034 * h * a, _BOTTOM))
        prims.append(_circle(knee, 0.03 * h * a, _BOTTOM))
        prims.append(_limb(knee, ankle, 0.027 * h * a, bottom_lower))
        prims.append(_limb(ankle, ankle + h * np.array([0.055 * d, 0.025]), 0.016 * h, _SHOES))
    l_sho, r_sho, l_hip, r_hip = sk.arms[0][0], sk.arms[1][0], sk.legs[0][0], sk.legs[1][0]
    hips_w, sho_w = np.array([0.03 * h * a, 0.0]), np.array([0.03 * h * a, 0.0])
    up = np.array([0.0, -0.015 * h])
    prims.append(("poly", np.stack([l_sho + sho_w + up, r_sho - sho_w + up, r_hip - hips_w, l_hip + hips_w]), _TOP))
    prims.append(_limb(sk.neck, sk.neck + np.array([0.0, -0.07 * h]), 0.025 * h * a, _SKIN))
    for sho, elbow, wrist in sk.arms:
        prims.append(_circle(sho, 0.03 * h * a, _TOP))
        prims.append(_limb(sho, elbow, 0.024 * h * a, _TOP))
        prims.append(_circle(elbow, 0.021 * h * a, _SLEEVE))
        prims.append(_limb(elbow, wrist, 0.02 * h * a, _SLEEVE))
        prims.append(_circle(wrist, 0.022 * h, _SKIN))
    prims.append(_circle(sk.head + np.array([0.0, -0.014 * h]), 0.071 * h, _HAIR))
    prims.append(_circle(sk.head, 0.066 * h, _SKIN))
    return prims


def _body(video: _Video, p: _Person, t: int) -> tuple[np.ndarray, list[Prim]]:
    """Body points (:func:`_body_points`) and the drawing primitives of person ``p`` at frame ``t``."""
    st = _Stance(*video.foot(p, t), p.phase + 2 * math.pi * p.freq * t)
    bob = 0.008 * abs(math.cos(st.phase)) if p.swing else 0.0
    turn = 0.02 * p.turn + 0.01 * p.facing
    sk = _skeleton(st, p, bob, turn)
    return _body_points(st, sk, bob, turn), _body_prims(st, p, sk)


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


def _place(video: _Video, t: int) -> list[_Placed]:
    """People touching the image at frame ``t``, in drawing order (far to near, then by track id)."""
    out = []
    for p in video.people:
        kpts, prims = _body(video, p, t)
        ext = _extent(prims)
        _, fy, h = video.foot(p, t)
        margin = max(1.0, 0.02 * h)
        box = ext + np.array([-margin, -margin, margin, margin])
        if box[2] <= 0 or box[0] >= video.width or box[3] <= 0 or box[1] >= video.height:
            continue
        out.append(_Placed(p, kpts, prims, box, fy))
    out.sort(key=lambda q: (q.foot_y, q.person.track_id))
    return out[:_MAX_PEOPLE_PER_FRAME]


def _draw_occluders(canvas: np.ndarray, video: _Video, label: int | None = None) -> None:
    for occ in video.occluders:
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


def _draw_background(video: _Video, rng: np.random.Generator) -> np.ndarray:
    w, h, hz = video.width, video.height, round(video.horizon)
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


def render_frame(video: _Video, t: int) -> np.ndarray:
    """Render frame ``t`` of ``video`` as ``H x W x 3`` uint8 RGB (deterministic)."""
    img = video.background().copy()
    for q in _place(video, t):
        colors = q.person.colors
        _draw(img, q.prims, lambda c, colors=colors: tuple(int(v) for v in colors[c]), cv2.LINE_AA)
        h = video.foot(q.person, t)[2]
        if h >= 40:  # eyes on larger people
            for eye in _fixed(q.kpts[1:3]):
                cv2.circle(
                    img, (int(eye[0]), int(eye[1])), int(0.009 * h * _SCALE), (20, 20, 20), -1, cv2.LINE_AA, _SHIFT
                )
    _draw_occluders(img, video)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    rng = np.random.default_rng([*video._entropy, 2, t])
    noisy = img.astype(np.float32) * float(rng.uniform(0.95, 1.05)) + rng.normal(0.0, 4.0, size=img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SyntheticImage:
    """Zero-argument loader of one synthetic frame (the ``Frame.image`` of generated frames)."""

    video: _Video
    index: int

    def __call__(self) -> np.ndarray:
        return render_frame(self.video, self.index)


def occluder_boxes(frame: Frame) -> np.ndarray:
    """``M x 4`` boxes (x1, y1, x2, y2) of the static occluders of a generated frame."""
    if not isinstance(frame.image, SyntheticImage):
        raise TypeError(f"frame {frame.frame_id} is not a generated synthetic frame")
    return np.array([o.box for o in frame.image.video.occluders], dtype=np.float64).reshape(-1, 4)


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


def _annotate(video: _Video, t: int, body_rows: tuple[int | None, ...] = SCHEMA_ROWS[COCO_17.name]) -> Frame:
    w, h = video.width, video.height
    placed = _place(video, t)
    label = np.zeros((h, w), np.uint8)
    for j, q in enumerate(placed):
        _draw(label, q.prims, lambda _c, j=j: (j + 1,), cv2.LINE_8)
    _draw_occluders(label, video, _OCCLUDER_LABEL)
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
        for k, row in enumerate(body_rows):
            if row is None:
                continue
            x, y = q.kpts[row]
            if 0 <= x < w and 0 <= y < h:
                seen = label[int(y), int(x)]
                covered = seen == _OCCLUDER_LABEL or (seen != 0 and seen != j + 1)
                kpts[k] = (x, y, 1.0 if covered else 2.0)
        head = q.kpts[_HEAD_BOX].reshape(4)
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


def generate(preset: str = "small", seed: int = 0, schema: str = COCO_17.name) -> Dataset:
    """Generate the synthetic crowd-video dataset ``preset`` (splits ``train`` and ``val``).

    ``schema`` (``coco17``, ``crowdpose14``, ``hie14``, ``posetrack17``) picks the keypoints annotated
    (:data:`SCHEMA_ROWS`); boxes, tracks and images do not depend on it. Annotations are computed now; images are
    rendered when ``Frame.load_image()`` is called.
    """
    spec = _preset(preset)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if schema not in SCHEMA_ROWS:
        raise ValueError(f"unknown keypoint schema {schema!r}; known: {', '.join(SCHEMA_ROWS)}")
    rows = SCHEMA_ROWS[schema]
    splits: dict[str, list[Frame]] = {}
    for split in SPLITS:
        frames: list[Frame] = []
        for v in range(spec.videos[split]):
            video = _Video(spec, seed, split, v)
            frames.extend(_annotate(video, t, rows) for t in range(video.n_frames))
        splits[split] = frames
    summary: dict[str, float | int | str] = {
        "preset": preset,
        "seed": seed,
        "schema": schema,
        "width": spec.width,
        "height": spec.height,
    }
    summary.update(summarize([f for frames in splits.values() for f in frames]))
    for split, frames in splits.items():
        summary.update({f"{split}/{k}": v for k, v in summarize(frames).items()})
    return Dataset(name=f"synthetic-{preset}", schema=get_schema(schema), splits=splits, summary=summary)


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
        other = _regenerated(str(summary["preset"]), int(summary["seed"]), schema).frames(split)
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
def _regenerated(preset: str, seed: int, schema: str) -> Dataset:
    return generate(preset, seed, schema)


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
