"""Optical flow and flow-based smoothing of boxes and poses (methods.md section 6).

Flow convention (methods.md section 6, OpenCV's): ``flow = compute_flow(prev, nxt)`` satisfies
``prev(x) ≈ nxt(x + flow(x))``, i.e. ``flow[y, x] = (dx, dy)`` says where the pixel ``(x, y)`` of ``prev`` went
in ``nxt``. To move a point of frame i into frame k, compute ``compute_flow(I_i, I_k)`` and sample it at the point
(``propagate_points``): this is the warp ``W_{i->k}`` of the papers.

* Pose smoothing: paper 000 (Chang et al., MM'20 HIE report) section 3.2, eq. (1), also paper 004 section 4.2:
  ``J'_k = a W_{k-1->k}(J_{k-1}) + a W_{k+1->k}(J_{k+1}) + (1 - 2a) J_k``.
* Box smoothing: paper 004 (HIE2020 Track 3 report) section 2.1: ``B'_k = (1 - w) B_k + w W_{k-1->k}(B_{k-1})``,
  ``w = 0.5``.

The reports probably used a learned flow (FlowNet2-class); here flow is OpenCV's DIS (default, preset MEDIUM) or
Farneback (fallback), computed on grey images: a deviation noted in methods.md.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from crowdbench.datasets.formats.atomic import atomic_write_bytes
from crowdbench.datasets.model import Frame

FlowMethod = Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"]
BoxMode = Literal["median", "corners"]
MissingMode = Literal["renormalise", "keep"]

_DIS_PRESETS = {
    "dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# cv2.calcOpticalFlowFarneback(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags): methods.md table.
_FARNEBACK_ARGS = (0.5, 3, 15, 3, 5, 1.2, 0)


def _grey(image: np.ndarray) -> np.ndarray:
    """``H x W`` (or ``H x W x 1``) grey or ``H x W x 3`` RGB uint8 -> contiguous ``H x W`` uint8 grey."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"compute_flow expects uint8 images, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"compute_flow expects H x W or H x W x 3 images, got shape {image.shape}")
    return np.ascontiguousarray(image)


def compute_flow(
    prev: np.ndarray,
    nxt: np.ndarray,
    method: FlowMethod = "dis_medium",
    scale: float = 1.0,
) -> np.ndarray:
    """Dense optical flow ``H x W x 2`` float32 from ``prev`` to ``nxt`` (methods.md section 6).

    ``prev(x) ≈ nxt(x + flow(x))``. Inputs are RGB or grey uint8 of the same size (RGB is converted to grey).
    ``scale < 1`` computes the flow on images resized by ``scale`` (``INTER_AREA``), then upsamples the field
    bilinearly to full size and multiplies the vectors by the per-axis resize factor.
    """
    a, b = _grey(prev), _grey(nxt)
    if a.shape != b.shape:
        raise ValueError(f"compute_flow: image sizes differ: {a.shape} vs {b.shape}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"compute_flow: scale must be in (0, 1], got {scale}")
    height, width = a.shape
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, *_FARNEBACK_ARGS)
    elif method in _DIS_PRESETS:
        flow = cv2.DISOpticalFlow_create(_DIS_PRESETS[method]).calc(a, b, None)
    else:
        raise ValueError(f"compute_flow: unknown method {method!r}; one of {[*_DIS_PRESETS, 'farneback']}")
    if flow.shape[:2] != (height, width):
        small_h, small_w = flow.shape[:2]
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= width / small_w
        flow[..., 1] *= height / small_h
    return np.ascontiguousarray(flow, dtype=np.float32)


def _xy(points: np.ndarray) -> np.ndarray:
    """``N x >=2`` points (x, y[, score ...]) -> ``N x 2`` float64 coordinates."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"points must be N x 2 (or N x 3 with scores), got shape {pts.shape}")
    return pts[:, :2]


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples ``N x 2`` of ``flow`` (``H x W x 2``) at sub-pixel ``points`` (``N x >=2``, x then y).

    Pixel centres are at integer coordinates; points outside the image are clamped to the border (the flow of the
    nearest border pixel). This is the ``F_{i->k}(J_j)`` of methods.md section 6.
    """
    pts = _xy(points)
    if len(pts) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    height, width = flow.shape[:2]
    x = np.clip(pts[:, 0], 0.0, width - 1)
    y = np.clip(pts[:, 1], 0.0, height - 1)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    f = flow.astype(np.float64, copy=False) if flow.dtype != np.float64 else flow
    top = f[y0, x0] * (1.0 - fx) + f[y0, x1] * fx
    bottom = f[y1, x0] * (1.0 - fx) + f[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def propagate_points(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``W_{i->k}``: points (``N x >=2``) of frame i moved into frame k by the flow i -> k, ``N x 2`` float64.

    Paper 000 section 3.2: a joint at ``(x, y)`` goes to ``(x + dx, y + dy)``, ``(dx, dy)`` the flow at ``(x, y)``.
    """
    pts = _xy(points)
    return pts + sample_flow(flow, pts)


def propagate_box(box: np.ndarray, flow: np.ndarray, mode: BoxMode = "median") -> np.ndarray:
    """``W_{i->k}(B)``: box ``(x1, y1, x2, y2)`` of frame i moved into frame k by the flow i -> k (float64).

    ``median`` (default, methods.md section 6): translate the box by the per-axis median flow of the pixels whose
    centres lie inside it (clipped to the image; the bilinear flow at its centre if it covers no pixel centre).
    ``corners``: move the two corners independently (paper 004 section 2.1 warps the two corner "joints").
    """
    b = np.asarray(box, dtype=np.float64).reshape(4)
    if mode == "corners":
        return propagate_points(b.reshape(2, 2), flow).reshape(4)
    if mode != "median":
        raise ValueError(f"propagate_box: unknown mode {mode!r}; one of ['median', 'corners']")
    height, width = flow.shape[:2]
    xa, ya = max(0, int(np.ceil(b[0]))), max(0, int(np.ceil(b[1])))
    xb, yb = min(width - 1, int(np.floor(b[2]))), min(height - 1, int(np.floor(b[3])))
    if xa <= xb and ya <= yb:
        shift = np.median(flow[ya : yb + 1, xa : xb + 1].reshape(-1, 2), axis=0).astype(np.float64)
    else:
        shift = sample_flow(flow, np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]]))[0]
    return b + np.tile(shift, 2)


def _safe_name(video: str) -> str:
    """File-system-safe, collision-free folder name for a video id (``/``, ``..``, spaces ... are neutralised)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", video)[:80]
    digest = hashlib.sha1(video.encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}"


class FlowCache:
    """Flow fields cached on disk per video: ``root/<video>/{a:06d}_{b:06d}_{method}_{scale:g}.npy``.

    ``a`` and ``b`` are ``Frame.index`` values; ``<video>`` is the video id made path-safe (non ``[A-Za-z0-9_.-]``
    characters replaced, plus a 10-hex hash of the id so distinct ids never share a folder). Files are written
    atomically (temporary file + ``os.replace``, ``datasets.formats.atomic``), so concurrent or interrupted writers
    never leave half a file. Stored as float16 by default: relative error <= 2^-11 (about 0.05 %), i.e. at most
    0.016 px for |flow| < 64 px and 0.031 px below 128 px (max representable 65504); ``dtype="float32"`` stores
    exactly. ``get`` always returns float32 with the stored precision, on a hit as on a miss, so results do not
    depend on the cache state.
    """

    def __init__(
        self,
        root: str | Path,
        method: FlowMethod = "dis_medium",
        scale: float = 1.0,
        dtype: Literal["float16", "float32"] = "float16",
    ) -> None:
        self.root = Path(root)
        self.method = method
        self.scale = float(scale)
        self.dtype = np.dtype(dtype)

    def path(self, video: str, a: int, b: int) -> Path:
        """Cache file of the flow from frame index ``a`` to frame index ``b`` of ``video``."""
        return self.root / _safe_name(video) / f"{a:06d}_{b:06d}_{self.method}_{self.scale:g}.npy"

    def get(self, frames: Sequence[Frame], a: int, b: int) -> np.ndarray:
        """Flow ``H x W x 2`` float32 from the frame with ``index == a`` to the one with ``index == b``.

        ``frames`` are frames of one video (any order). Read from disk when cached, else computed with
        ``compute_flow(frame_a.load_image(), frame_b.load_image(), method, scale)`` and stored.
        """
        by_index = {f.index: f for f in frames}
        try:
            fa, fb = by_index[a], by_index[b]
        except KeyError as err:
            raise KeyError(f"FlowCache.get: no frame with index {err.args[0]} among {len(frames)} frames") from None
        if fa.video != fb.video:
            raise ValueError(f"FlowCache.get: frames {fa.frame_id} and {fb.frame_id} belong to different videos")
        path = self.path(fa.video, a, b)
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False).astype(np.float32)
            except (ValueError, OSError, EOFError):
                pass  # unreadable (e.g. foreign file): recompute and overwrite
        flow = compute_flow(fa.load_image(), fb.load_image(), self.method, self.scale).astype(self.dtype)
        buffer = io.BytesIO()
        np.save(buffer, flow, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        return flow.astype(np.float32)


def smooth_boxes(
    tracks: Sequence[dict[int, np.ndarray]],
    flows_prev_to_cur: Sequence[np.ndarray | None],
    weight: float = 0.5,
    mode: BoxMode = "median",
) -> list[dict[int, np.ndarray]]:
    """Box smoothing by flow, paper 004 section 2.1: ``B'_k = (1 - w) B_k + w W_{k-1->k}(B_{k-1})``.

    ``tracks[k]`` maps track id -> box ``(x1, y1, x2, y2[, extra...])`` of frame k; ``flows_prev_to_cur[k]`` is
    ``compute_flow(I_{k-1}, I_k)`` (``None`` for k = 0 or when unknown). A box is smoothed when its id is also in
    frame k-1 and the flow exists, otherwise copied. ``B_{k-1}`` is the *raw* (unsmoothed) previous box: the formula
    is applied per frame to the detections, not recursively as a filter. Extra columns (e.g. a score) are kept.
    """
    if len(flows_prev_to_cur) != len(tracks):
        raise ValueError(f"smooth_boxes: {len(tracks)} frames but {len(flows_prev_to_cur)} flows")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"smooth_boxes: weight must be in [0, 1], got {weight}")
    out: list[dict[int, np.ndarray]] = []
    for k, frame in enumerate(tracks):
        flow = flows_prev_to_cur[k]
        prev = tracks[k - 1] if k > 0 else {}
        smoothed: dict[int, np.ndarray] = {}
        for tid, box in frame.items():
            new = np.array(box, dtype=np.float64).reshape(-1)
            if flow is not None and tid in prev:
                moved = propagate_box(np.asarray(prev[tid], dtype=np.float64).reshape(-1)[:4], flow, mode)
                new[:4] = (1.0 - weight) * new[:4] + weight * moved
            smoothed[tid] = new
        out.append(smoothed)
    return out


def _warp_neighbour(
    cur: dict[int, np.ndarray], neighbour: dict[int, np.ndarray], flow: np.ndarray | None, conf_thr: float
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For ids of ``cur`` also in ``neighbour``: (neighbour joints warped by ``flow``, per-joint score > thr)."""
    if flow is None:
        return {}
    ids = [tid for tid in cur if tid in neighbour]
    if not ids:
        return {}
    poses = [np.asarray(neighbour[tid], dtype=np.float64).reshape(-1, 3) for tid in ids]
    warped = propagate_points(np.concatenate(poses), flow)  # one vectorised sample for the whole frame
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    start = 0
    for tid, pose in zip(ids, poses, strict=True):
        out[tid] = (warped[start : start + len(pose)], pose[:, 2] > conf_thr)
        start += len(pose)
    return out


def smooth_poses(
    poses: Sequence[dict[int, np.ndarray]],
    flow_prev_to_cur: Sequence[np.ndarray | None],
    flow_next_to_cur: Sequence[np.ndarray | None],
    alpha: float,
    conf_thr: float = 0.0,
    missing: MissingMode = "keep",
) -> list[dict[int, np.ndarray]]:
    """Optical-flow pose smoothing, paper 000 section 3.2 eq. (1) (paper 004 section 4.2):

    ``J'_k = a W_{k-1->k}(J_{k-1}) + a W_{k+1->k}(J_{k+1}) + (1 - 2a) J_k``, applied per joint.

    ``poses[k]`` maps track id -> ``K x 3`` (x, y, score) of frame k. ``flow_prev_to_cur[k]`` is
    ``compute_flow(I_{k-1}, I_k)`` and ``flow_next_to_cur[k]`` is ``compute_flow(I_{k+1}, I_k)`` (``None`` where the
    neighbour frame does not exist). A neighbour joint is available when the same track id exists in that frame,
    its flow is given and the neighbour joint's score is ``> conf_thr``. ``missing="keep"`` (default, paper 000:
    "if the same IDs exist in the previous and next frames and their confidence scores are higher than a threshold")
    changes a joint only when both neighbours are available; ``missing="renormalise"`` uses the available terms with
    weights ``{a, a, 1 - 2a}`` renormalised to sum to 1 (methods.md section 6 assumption). Neighbours are the raw
    (unsmoothed) poses; the scores of ``J_k`` are kept.
    """
    n = len(poses)
    if len(flow_prev_to_cur) != n or len(flow_next_to_cur) != n:
        raise ValueError(f"smooth_poses: {n} frames but {len(flow_prev_to_cur)} / {len(flow_next_to_cur)} flows")
    if not 0.0 <= alpha <= 0.5:
        raise ValueError(f"smooth_poses: alpha must be in [0, 0.5], got {alpha}")
    if missing not in ("keep", "renormalise"):
        raise ValueError(f"smooth_poses: unknown missing mode {missing!r}; one of ['keep', 'renormalise']")
    out: list[dict[int, np.ndarray]] = []
    for k, cur in enumerate(poses):
        prev = _warp_neighbour(cur, poses[k - 1], flow_prev_to_cur[k], conf_thr) if k > 0 else {}
        nxt = _warp_neighbour(cur, poses[k + 1], flow_next_to_cur[k], conf_thr) if k + 1 < n else {}
        smoothed: dict[int, np.ndarray] = {}
        for tid, pose in cur.items():
            joints = np.array(pose, dtype=np.float64).reshape(-1, 3)
            num_joints = len(joints)
            wp = np.zeros(num_joints)
            wn = np.zeros(num_joints)
            xy_p = xy_n = np.zeros((num_joints, 2))
            if tid in prev:
                xy_p, valid = prev[tid]
                wp = alpha * valid
            if tid in nxt:
                xy_n, valid = nxt[tid]
                wn = alpha * valid
            if missing == "keep":
                both = (wp > 0) & (wn > 0)
                wp, wn = wp * both, wn * both
                wc = np.where(both, 1.0 - 2.0 * alpha, 1.0)
            else:
                wc = np.full(num_joints, 1.0 - 2.0 * alpha)
            total = wp + wn + wc
            ok = total > 0  # alpha = 0.5 with no neighbour: nothing to average, keep J_k
            mixed = wp[:, None] * xy_p + wn[:, None] * xy_n + wc[:, None] * joints[:, :2]
            joints[ok, :2] = mixed[ok] / total[ok, None]
            smoothed[tid] = joints
        out.append(smoothed)
    return out
