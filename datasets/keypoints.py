"""Keypoint conventions (COCO-17, CrowdPose-14, HIE-14, PoseTrack18-17) and explicit mappings between them.

Skeleton edges and flip pairs are **0-based** keypoint indices (the COCO JSON ``categories[].skeleton`` is
1-based; writers add 1). Mappings are tuples with one entry per *destination* keypoint: an ``int`` is the
source index copied as is, a ``str`` names a derived point (:data:`DERIVED`) computed from source keypoints
looked up by name, only when the caller asks for it (``convert_keypoints(..., derive=True)``; by default a joint
the source lacks is marked unlabeled, not invented):

- ``"neck"``: midpoint of the two shoulders (CrowdPose ``neck``, HIE ``chest``, PoseTrack ``head_bottom``).
- ``"head_top"``: extrapolated upwards along the neck→eyes axis: ``eyes_mid + 0.5 * (eyes_mid - neck)``
  (the eyes sit about half-way up the head); without eyes, ``nose + 0.7 * (nose - neck)``; without
  shoulders, ``eyes_mid + 2.5 * (eyes_mid - nose)``.
- ``"unlabeled"``: always ``(0, 0, 0)``.

A derived point's third value (visibility or score) is the minimum over the points it was computed from;
it is unlabeled ``(0, 0, 0)`` when any of them is unlabeled (``v <= 0``).
"""

from __future__ import annotations

import numpy as np

from crowdbench.datasets.model import KeypointSchema

__all__ = [
    "COCO_17",
    "COCO_TO_CROWDPOSE",
    "COCO_TO_HIE",
    "COCO_TO_POSETRACK",
    "CROWDPOSE_14",
    "DERIVED",
    "HIE_14",
    "MAPPINGS",
    "POSETRACK_17",
    "SCHEMAS",
    "convert_keypoints",
    "get_schema",
]

_COCO_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
_COCO_SIGMAS = (
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)
# Limbs and torso (COCO json skeleton minus 1), then the face edges.
_COCO_BODY_EDGES = (
    *((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11)),
    *((6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10)),
)

COCO_17 = KeypointSchema(
    name="coco17",
    keypoints=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(*_COCO_BODY_EDGES, (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    sigmas=_COCO_SIGMAS,
)
"""COCO person keypoints; sigmas from pycocotools ``Params.setKpParams`` (metrics.md 1.1)."""

CROWDPOSE_14 = KeypointSchema(
    name="crowdpose14",
    keypoints=(*_COCO_NAMES[5:], "head", "neck"),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    skeleton=(
        *((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5)),
        *((0, 6), (1, 7), (6, 7), (6, 8), (8, 10), (7, 9), (9, 11)),
    ),
    sigmas=(*_COCO_SIGMAS[5:], 0.079, 0.079),
)
"""CrowdPose: the 12 COCO limb joints, then ``head`` (top of the head) and ``neck`` (metrics.md 2.1)."""

HIE_14 = KeypointSchema(
    name="hie14",
    keypoints=(
        "nose",
        "chest",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)),
    skeleton=(
        *((0, 1), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7)),
        *((2, 8), (5, 11), (8, 11), (8, 9), (9, 10), (11, 12), (12, 13)),
    ),
    # No official HIE sigmas exist (metrics.md 4): COCO's value per joint, chest = CrowdPose's neck (.079).
    # The unofficial Zepyhrus/hie evaluator uses other values; they are not a reference.
    sigmas=(0.026, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089),
)
"""HIE2020 / HiEve: joint order from the challenge format page (metrics.md 4: 0 nose, 1 chest, then right
before left). ``chest`` is treated as the shoulder midpoint (the format page does not define it further)."""

POSETRACK_17 = KeypointSchema(
    name="posetrack17",
    keypoints=("nose", "head_bottom", "head_top", *_COCO_NAMES[3:]),
    flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(*_COCO_BODY_EDGES, (2, 0), (0, 1), (1, 5), (1, 6)),
    sigmas=_COCO_SIGMAS,
)
"""PoseTrack18 (COCO-style, 17 slots): the eye slots carry ``head_bottom`` / ``head_top`` and the ears are
never labeled (metrics.md 5.1, checked on the PT18 val JSON). Sigmas as COCO (what MMPose uses)."""

SCHEMAS: dict[str, KeypointSchema] = {s.name: s for s in (COCO_17, CROWDPOSE_14, HIE_14, POSETRACK_17)}

DERIVED = ("neck", "head_top", "unlabeled")

COCO_TO_CROWDPOSE: tuple[int | str, ...] = (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, "head_top", "neck")
COCO_TO_HIE: tuple[int | str, ...] = (0, "neck", 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15)
COCO_TO_POSETRACK: tuple[int | str, ...] = (0, "neck", "head_top", "unlabeled", "unlabeled", *range(5, 17))

MAPPINGS: dict[tuple[str, str], tuple[int | str, ...]] = {
    (COCO_17.name, CROWDPOSE_14.name): COCO_TO_CROWDPOSE,
    (COCO_17.name, HIE_14.name): COCO_TO_HIE,
    (COCO_17.name, POSETRACK_17.name): COCO_TO_POSETRACK,
}
"""Explicit mappings; any other pair falls back to copying keypoints with the same name."""


def get_schema(name: str) -> KeypointSchema:
    """Schema by name (``coco17``, ``crowdpose14``, ``hie14``, ``posetrack17``)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint schema {name!r}; known: {sorted(SCHEMAS)}") from None


def _mapping(src: KeypointSchema, dst: KeypointSchema) -> tuple[int | str, ...]:
    if src.name == dst.name:
        return tuple(range(src.num_keypoints))
    if (src.name, dst.name) in MAPPINGS:
        return MAPPINGS[(src.name, dst.name)]
    index = {n: i for i, n in enumerate(src.keypoints)}
    return tuple(index.get(n, "unlabeled") for n in dst.keypoints)


def _combine(kpts: np.ndarray, points: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """``sum(w * p)`` of source points (``... x 3``); third value = min of theirs, unlabeled if any is."""
    xy = sum(w * p[..., :2] for w, p in zip(weights, points, strict=True))
    v = np.min(np.stack([p[..., 2] for p in points]), axis=0)
    labeled = np.all(np.stack([p[..., 2] > 0 for p in points]), axis=0)
    out = np.concatenate([xy, v[..., None]], axis=-1)
    out[~labeled] = 0.0
    return out


def _derive(rule: str, kpts: np.ndarray, src: KeypointSchema) -> np.ndarray:
    """One derived point (``... x 3``) from ``kpts`` (``... x K x 3``) in schema ``src``."""
    unlabeled = np.zeros((*kpts.shape[:-2], 3))
    if rule == "unlabeled":
        return unlabeled
    idx = {n: i for i, n in enumerate(src.keypoints)}

    def get(name: str) -> np.ndarray | None:
        return kpts[..., idx[name], :] if name in idx else None

    ls, rs = get("left_shoulder"), get("right_shoulder")
    neck = _combine(kpts, [ls, rs], [0.5, 0.5]) if ls is not None and rs is not None else None
    if rule == "neck":
        if neck is None:
            raise ValueError(f"schema {src.name!r} has no shoulders to derive a neck from")
        return neck
    if rule != "head_top":
        raise ValueError(f"unknown derived keypoint {rule!r}; known: {DERIVED}")
    le, re_, nose = get("left_eye"), get("right_eye"), get("nose")
    candidates: list[np.ndarray] = []
    if le is not None and re_ is not None and neck is not None:
        candidates.append(_combine(kpts, [le, re_, neck], [0.75, 0.75, -0.5]))
    if nose is not None and neck is not None:
        candidates.append(_combine(kpts, [nose, neck], [1.7, -0.7]))
    if le is not None and re_ is not None and nose is not None:
        candidates.append(_combine(kpts, [le, re_, nose], [1.75, 1.75, -2.5]))
    if not candidates:
        raise ValueError(f"schema {src.name!r} has no eyes/nose/shoulders to derive a head top from")
    out = unlabeled.copy()
    for cand in reversed(candidates):  # the first rule whose inputs are all labeled wins
        has = np.any(cand != 0, axis=-1)
        out[has] = cand[has]
    return out


def convert_keypoints(
    kpts: np.ndarray, src: KeypointSchema, dst: KeypointSchema, *, derive: bool = False
) -> np.ndarray:
    """Convert ``K x 3`` (or ``N x K x 3``) keypoints from schema ``src`` to ``dst``.

    Uses the explicit mapping of :data:`MAPPINGS` when there is one, else copies same-named keypoints. A joint
    ``src`` does not have is marked unlabeled ``(0, 0, 0)``, never invented; ``derive=True`` asks for the
    documented :data:`DERIVED` approximations (``neck``, ``head_top``) instead, for callers that want them.
    """
    kpts = np.asarray(kpts, dtype=np.float64)
    if kpts.ndim < 2 or kpts.shape[-2:] != (src.num_keypoints, 3):
        raise ValueError(f"expected (..., {src.num_keypoints}, 3) keypoints for {src.name}, got {kpts.shape}")
    mapping = _mapping(src, dst)
    cols = [
        kpts[..., m, :] if isinstance(m, int) else _derive(m if derive else "unlabeled", kpts, src) for m in mapping
    ]
    return np.stack(cols, axis=-2)
