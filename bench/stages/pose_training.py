"""Top-down pose training and inference on our frames (methods.md sections 3, 5, 8).

Person crops come from ground-truth boxes (training, and ``pose.test.boxes = "gt"``). A crop is warped with the UDP
or MSRA affine transform after random scale / rotation / flip / half-body, optionally occluded (paper 001 section
3.1; heatmap targets are left unchanged), and encoded as Gaussian heatmaps or disk + offset maps (paper 003
section 3.1.2). Training is Adam with a per-epoch schedule (``methods/pose/schedules.py``: S1, S2, S3 with its
restart); each epoch is checkpointed so an interrupted run resumes exactly, and the validation AP and training
loss of every epoch are recorded (the curves of paper 001 Fig. 3 and Fig. 4).

Randomness is a pure function of ``(seed, epoch, position)``, so the same seed gives the same model on CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from crowdbench.bench.config import PoseConfig, PoseTestConfig, PoseTrainConfig, RunConfig
from crowdbench.bench.device import loader_workers
from crowdbench.bench.log import Tracker
from crowdbench.bench.training import Trainer
from crowdbench.datasets.formats.coco import CocoFrames, read_coco_results
from crowdbench.datasets.images import ImageCache
from crowdbench.datasets.model import Frame, KeypointSchema
from crowdbench.methods.pose.occlusion import cutout, hide_and_seek, keypoint_aware_occlusion
from crowdbench.methods.pose.postprocess import average_heatmaps, pose_score, warp_box_scale
from crowdbench.methods.pose.schedules import SCHEDULES, lr_at, oa_active, restarts_at

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# COCO-17 upper body (nose .. wrists) for half-body augmentation; other schemas: joints above the hips by name.
_UPPER_NAMES = ("nose", "eye", "ear", "shoulder", "elbow", "wrist", "head", "neck", "chest")


@dataclass(frozen=True)
class Person:
    """One training / evaluation crop: frame position, instance position, box and box score."""

    frame: int
    instance: int
    box: np.ndarray
    score: float = 1.0


def people(frames: list[Frame], min_keypoints: int) -> list[Person]:
    """Non-ignored instances with at least ``min_keypoints`` labeled joints (0: every instance)."""
    out = []
    for f, frame in enumerate(frames):
        for i, inst in enumerate(frame.instances):
            if inst.ignore or inst.keypoints is None:
                continue
            if int((inst.keypoints[:, 2] > 0).sum()) >= min_keypoints and inst.box[2] > inst.box[0]:
                out.append(Person(f, i, inst.box.copy()))
    return out


def heatmap_size(input_wh: tuple[int, int], stride: int) -> tuple[int, int]:
    """The network's output size for an input: ``ceil(side / stride)`` (the pose nets crop to it)."""
    return -(-input_wh[0] // stride), -(-input_wh[1] // stride)


def upper_body_ids(schema: KeypointSchema) -> list[int]:
    return [j for j, n in enumerate(schema.keypoints) if any(part in n for part in _UPPER_NAMES)]


def normalize(crop: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 RGB -> ``3 x H x W`` float, ImageNet mean/std."""
    x = (crop.astype(np.float32) / 255.0 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class TrainCrops(torch.utils.data.Dataset):
    """``(person position, epoch)`` -> augmented crop and targets (a pure function of seed, epoch, position)."""

    def __init__(self, frames: list[Frame], persons: list[Person], schema: KeypointSchema, cfg: PoseConfig, seed: int):
        self.frames, self.persons, self.schema, self.cfg, self.seed = frames, persons, schema, cfg, seed
        self.images = ImageCache(frames)
        self.upper = upper_body_ids(schema)
        self.occlusion = False

    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, key: tuple[int, int, bool]) -> dict[str, torch.Tensor]:
        # deferred: start-up (cv2)
        from crowdbench.methods.pose import transforms as tf
        from crowdbench.methods.pose.codecs import encode_disk_offsets, encode_gaussian

        index, epoch, occlude = key
        t, m = self.cfg.train, self.cfg.model
        rng = np.random.default_rng([self.seed, epoch, index])
        person = self.persons[index]
        frame = self.frames[person.frame]
        joints = frame.instances[person.instance].keypoints.copy()
        in_w, in_h = m.input_size
        center, size = tf.box_to_center_scale(person.box, in_w / in_h, t.box_padding)
        if t.half_body_prob > 0:
            hb = tf.half_body(
                joints, self.upper, rng, in_w / in_h, min_joints=t.half_body_min_joints, prob=t.half_body_prob
            )
            if hb is not None:
                center, size = hb
        scale, rot = tf.random_scale_rotation(rng, t.scale_factor, t.rot_factor, t.rot_prob)
        image = self.images(person.frame)
        if rng.random() < t.flip_prob:
            image = tf.flip_image(image)
            joints = tf.flip_joints(joints, frame.width or image.shape[1], self.schema.flip_pairs, udp=t.udp)
            center = np.array([(frame.width or image.shape[1]) - 1 - center[0], center[1]])
        matrix = tf.crop_matrix(center, np.asarray(size) * scale, rot, (in_w, in_h), udp=t.udp)
        crop = tf.warp_crop(image, matrix, (in_w, in_h))
        kp = joints.copy()
        kp[:, :2] = tf.apply_affine(joints[:, :2], matrix)
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= in_w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= in_h - 1)
        kp[~inside, 2] = 0
        if occlude and rng.random() < t.occlusion_prob:
            if t.occlusion == "keypoint_aware":
                crop, _ = keypoint_aware_occlusion(crop, kp, rng)
            elif t.occlusion == "cutout":
                crop, _ = cutout(crop, rng)
            elif t.occlusion == "hide_and_seek":
                crop, _ = hide_and_seek(crop, rng)
        hm_w, hm_h = heatmap_size((in_w, in_h), self.stride)
        out: dict[str, torch.Tensor] = {"image": normalize(crop)}
        if t.target == "gaussian":
            heat, weight = encode_gaussian(kp, (in_w, in_h), (hm_w, hm_h), t.sigma, udp=t.udp)
        else:
            heat, offsets, weight = encode_disk_offsets(
                kp, (in_w, in_h), (hm_w, hm_h), disk_radius_px(t, hm_h), udp=t.udp
            )
            out["offsets"] = torch.from_numpy(np.ascontiguousarray(offsets, dtype=np.float32))
        out["heatmaps"] = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))
        out["weights"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        return out

    stride: int = 4


def disk_radius_px(train: PoseTrainConfig, heatmap_h: int) -> float:
    """Disk radius R in heatmap pixels (paper 003 eqs. (1)-(2)): UDP's ``0.0546875 x H_hm`` (3.5 px at stride 4),
    floored at ``disk_radius_min``. Paper 003 states no R; at stride 16 the UDP factor alone gives R < 1 px
    (0.875 px on a 256 x 192 input), so a disk holds at most one pixel and most joints none, which no network
    can learn from. The floor (default 1.5 px, a project choice) keeps every disk non-empty at any stride."""
    return max(train.disk_radius * heatmap_h, train.disk_radius_min)


def pose_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], target: str) -> dict[str, torch.Tensor]:
    """Gaussian targets: HRNet's ``JointsMSELoss`` (0.5 x MSE of weighted maps, mean over joints). Disk + offset
    targets (paper 003 section 3.1.2): Smooth-L1 on the disk maps and on the offsets inside the disks."""
    w = batch["weights"][:, :, None, None]
    pred, gt = outputs["heatmaps"].float(), batch["heatmaps"]
    if target == "gaussian":
        return {"heatmap": 0.5 * F.mse_loss(pred * w, gt * w)}
    heat = F.smooth_l1_loss(pred * w, gt * w)
    mask = gt.repeat_interleave(2, dim=1) * w.repeat_interleave(2, dim=1)
    off = F.smooth_l1_loss(outputs["offsets"].float() * mask, batch["offsets"] * mask, reduction="sum")
    return {"heatmap": heat, "offset": off / mask.sum().clamp(min=1.0)}


def build_model(cfg: PoseConfig, num_joints: int) -> torch.nn.Module:
    # deferred: start-up ()
    from crowdbench.methods.pose.models import build_pose_model

    m = cfg.model
    return build_pose_model(
        m.arch,
        num_joints=num_joints,
        backbone=m.backbone,
        hrnet_width=m.hrnet_width,
        deconv_layers=m.deconv_layers,
        deconv_channels=m.deconv_channels,
        fpn=m.fpn,
        offsets=m.offsets or cfg.train.target == "disk_offset",
        weights=m.weights,
    )


def _epoch_order(n: int, seed: int, epoch: int, per_epoch: int | None) -> np.ndarray:
    order = np.random.default_rng([seed, 104729, epoch]).permutation(n)
    return order[: per_epoch or n]


def _epoch_loader(
    data: TrainCrops, epoch: int, occlude: bool, n_batches: int, device: str
) -> torch.utils.data.DataLoader:
    """The ``n_batches`` batches of crops of one epoch (persons in :func:`_epoch_order`)."""
    t = data.cfg.train
    order = _epoch_order(len(data.persons), data.seed, epoch, t.samples_per_epoch)
    keys = [(int(i), epoch, occlude) for i in order[: n_batches * t.batch_size]]
    return torch.utils.data.DataLoader(
        data,
        batch_sampler=[keys[b : b + t.batch_size] for b in range(0, len(keys), t.batch_size)],
        num_workers=loader_workers(t.num_workers),
        pin_memory=device.startswith("cuda"),
    )


def train_pose(
    cfg: RunConfig,
    frames: list[Frame],
    schema: KeypointSchema,
    device: str,
    out: Path,
    scratch: Path,
    validate: Callable[[torch.nn.Module], float] | None = None,
    init: Path | None = None,
    prior: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``cfg.pose`` on ``frames``; resumes from ``scratch/checkpoint.pt``. ``init`` starts from a model and
    ``prior`` is its history (schedule S3's second phase: epochs continue after it); ``validate(model) -> AP`` is
    called every ``eval_every`` epochs."""
    t = cfg.pose.train
    schedule = SCHEDULES[t.schedule].scaled(t.epoch_scale)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.pose, schema.num_keypoints).to(device)
    if init is not None:
        # deferred: start-up ()
        from crowdbench.methods.pose.models import load_pose_weights

        load_pose_weights(model, init)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=t.lr), device, scratch, amp=t.amp)
    persons = people(frames, t.min_keypoints)
    if len(persons) < t.batch_size:
        raise ValueError(f"{len(persons)} training people is fewer than one batch of {t.batch_size}")
    data = TrainCrops(frames, persons, schema, cfg.pose, cfg.seed)
    data.stride = model.stride
    n_batches = len(_epoch_order(len(persons), cfg.seed, 0, t.samples_per_epoch)) // t.batch_size

    def epoch_of(epoch: int, _: None, bar: Tracker) -> dict[str, Any]:
        if restarts_at(schedule, epoch):
            trainer.opt = torch.optim.Adam(model.parameters(), lr=t.lr)  # second phase: fresh optimizer state
        lr = lr_at(schedule, epoch, t.lr)
        trainer.set_lr(lr)
        occlude = t.occlusion != "none" and oa_active(schedule, epoch)
        loader = _epoch_loader(data, epoch, occlude, n_batches, device)
        model.train()
        losses = []
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with trainer.autocast():
                outputs = model(batch["image"])
            losses.append(trainer.step(pose_loss(outputs, batch, t.target), f"epoch {epoch}").total)
            bar.advance(1, f"epoch {epoch + 1}/{schedule.epochs} loss {losses[-1]:.2e}")
        entry = {"epoch": len(prior or []) + epoch + 1, "lr": lr, "loss": float(np.mean(losses)), "occlusion": occlude}
        if validate is not None and t.eval_every and ((epoch + 1) % t.eval_every == 0 or epoch + 1 == schedule.epochs):
            entry["val_AP"] = validate(model)
        return entry

    history = trainer.fit(schedule.epochs, epoch_of, unit="epoch", steps_per_unit=n_batches)
    torch.save(model.state_dict(), out / "model.pt")
    (out / "history.json").write_text(json.dumps([*(prior or []), *history]))
    return {"epochs": schedule.epochs, "people": len(persons), "final_loss": history[-1]["loss"] if history else None}


def _crops(images: ImageCache, chunk: list[Person], rois: list, scale: float, in_wh: tuple[int, int], udp: bool):
    """Normalized input crops of the boxes of ``chunk`` (``rois``: centre, size), each scaled by ``scale``."""
    # deferred: start-up (cv2)
    from crowdbench.methods.pose.transforms import crop_matrix, warp_crop

    out = []
    for person, (center, size) in zip(chunk, rois, strict=True):
        matrix = crop_matrix(center, np.asarray(size) * scale, 0.0, in_wh, udp=udp)
        out.append(normalize(warp_crop(images(person.frame), matrix, in_wh)))
    return torch.stack(out)


def ensemble_weights(test: PoseTestConfig, members: int) -> np.ndarray:
    """Normalised heatmap weights of ``members`` models (the cell's own first); equal unless configured."""
    w = np.asarray(test.ensemble_weights or [1.0] * members, dtype=np.float64)
    if len(w) != members or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"pose.test.ensemble_weights={list(test.ensemble_weights)}: need {members} non-negative weights "
            "(the cell's model, then each pose.test.ensemble member)"
        )
    return w / w.sum()


def check_ensemble(cfg: PoseConfig) -> None:
    """Heatmap fusion needs members that look at the same box region and predict the same kind of map."""
    in_w, in_h = cfg.model.input_size
    for i, member in enumerate(cfg.test.ensemble):
        w, h = member.input_size
        if abs(w / h - in_w / in_h) > 1e-6:
            raise ValueError(
                f"pose.test.ensemble[{i}]: input {w}x{h} has another aspect ratio than the cell's {in_w}x{in_h}; "
                "fused models must crop the same box region"
            )
        if member.offsets:
            raise ValueError(f"pose.test.ensemble[{i}]: offset (disk) models cannot be fused by heatmap averaging")
    if cfg.test.ensemble and cfg.train.target == "disk_offset":
        raise ValueError("pose.test.ensemble: heatmap fusion needs Gaussian targets, not disk_offset")
    ensemble_weights(cfg.test, 1 + len(cfg.test.ensemble))


@torch.inference_mode()
def predict_poses(
    model: torch.nn.Module,
    cfg: PoseConfig,
    frames: list[Frame],
    persons: list[Person],
    schema: KeypointSchema,
    device: str,
    *,
    progress: bool = True,
    ensemble: Sequence[torch.nn.Module] = (),
) -> np.ndarray:
    """Keypoints (``N x K x 3``: x, y, score in image pixels) of each person crop, with the configured flip test and
    multi-scale test (methods.md section 8): ``multiscale_mode = "input"`` (reading A) keeps the crop and resizes the
    network input by s, heatmaps resized back; ``"box"`` (reading B, paper 000 section 4.3) crops the box scaled by s
    (same centre, same input size) and warps each heatmap into the s = 1 crop's heatmap frame. Heatmaps of every
    scale and view are averaged, then decoded in the s = 1 frame.

    ``ensemble``: trained models of ``cfg.test.ensemble`` (same order). Each crops the same box region at its own
    input size; its scale- and flip-averaged heatmaps are resized to the cell model's heatmap size and averaged with
    weights ``cfg.test.ensemble_weights`` (paper 000: HRNet + SimpleNet and 256 x 192 + 384 x 288 heatmap fusion)."""
    # deferred: start-up (cv2)
    from crowdbench.methods.pose.codecs import decode_argmax, decode_dark, decode_disk_offsets, heatmap_to_input
    from crowdbench.methods.pose.transforms import apply_affine, box_to_center_scale, crop_matrix, invert_affine

    t, test = cfg.train, cfg.test
    if len(ensemble) != len(test.ensemble):
        raise ValueError(f"pose.test.ensemble has {len(test.ensemble)} members, {len(ensemble)} models were given")
    check_ensemble(cfg)
    members = [(model, cfg.model), *zip(ensemble, test.ensemble, strict=True)]
    weights = ensemble_weights(test, len(members))
    in_w, in_h = cfg.model.input_size
    hm_w, hm_h = heatmap_size((in_w, in_h), model.stride)
    images = ImageCache(frames, capacity=64)
    for net, _ in members:
        net.eval()
    out = np.zeros((len(persons), schema.num_keypoints, 3))
    disk = t.target == "disk_offset"
    if disk and test.multiscale_mode == "box" and any(sc != 1.0 for sc in test.multiscale):
        raise ValueError("multiscale_mode=box warps heatmaps only; offset maps (disk_offset targets) are not warped")
    with ExitStack() as stack:  # the progress bar stops even if inference fails
        tracker = stack.enter_context(Tracker("infer", len(persons))) if progress else None
        for start in range(0, len(persons), test.batch_size):
            chunk = persons[start : start + test.batch_size]
            rois = [box_to_center_scale(person.box, in_w / in_h, t.box_padding) for person in chunk]
            matrices = [crop_matrix(center, size, 0.0, (in_w, in_h), udp=t.udp) for center, size in rois]
            fused = []
            for net, member in members:
                heat_maps, offset_maps = _member_maps(net, member.input_size, cfg, images, chunk, rois, schema, device)
                fused.append(average_heatmaps(heat_maps, size=(hm_h, hm_w), align_corners=t.udp))
            heat = sum(w * h for w, h in zip(weights, fused, strict=True)) if len(fused) > 1 else fused[0]
            if disk:
                offsets = average_heatmaps(offset_maps, size=(hm_h, hm_w), align_corners=t.udp)
                coords, scores = decode_disk_offsets(heat, offsets, disk_radius_px(t, hm_h))
            elif t.udp:  # UDP decodes Gaussian heatmaps with DARK's Taylor step (methods.md section 3)
                coords, scores = decode_dark(heat)
            else:  # MSRA: argmax + quarter-pixel shift towards the higher neighbour (methods.md section 8)
                coords, scores = decode_argmax(heat, quarter_offset=True)
            coords = heatmap_to_input(coords, (in_w, in_h), (hm_w, hm_h), udp=t.udp)
            for j, matrix in enumerate(matrices):
                out[start + j, :, :2] = apply_affine(coords[j], invert_affine(matrix))
                out[start + j, :, 2] = scores[j]
            if tracker:
                tracker.advance(len(chunk))
    return out


def _member_maps(
    model: torch.nn.Module,
    in_wh: tuple[int, int],
    cfg: PoseConfig,
    images: ImageCache,
    chunk: list[Person],
    rois: list,
    schema: KeypointSchema,
    device: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Heatmaps (and offset maps) of one model for every configured scale and flip view, flipped back and, in box
    mode, warped into the s = 1 crop's frame; each at the model's own heatmap size."""
    # deferred: start-up (cv2)
    from crowdbench.methods.pose.codecs import flip_back, flip_back_offsets

    t, test = cfg.train, cfg.test
    disk = t.target == "disk_offset"
    by_box = test.multiscale_mode == "box" and any(sc != 1.0 for sc in test.multiscale)
    x = _crops(images, chunk, rois, 1.0, in_wh, t.udp).to(device)
    heat_maps, offset_maps = [], []
    for s in test.multiscale:
        if s == 1.0:
            xs = x
        elif by_box:
            xs = _crops(images, chunk, rois, s, in_wh, t.udp).to(device)
        else:
            xs = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=t.udp)
        views = [(xs, False)] + ([(xs.flip(-1), True)] if test.flip_test else [])
        for view, flipped in views:
            o = model(view)
            h = o["heatmaps"].float().cpu().numpy()
            off = o["offsets"].float().cpu().numpy() if disk else None
            if flipped:
                h = flip_back(h, schema.flip_pairs, shift=not t.udp)
                off = flip_back_offsets(off, schema.flip_pairs) if off is not None else None
            if by_box and s != 1.0:
                h = warp_box_scale(h, s, udp=t.udp)
            heat_maps.append(h)
            if off is not None:
                offset_maps.append(off)
    return heat_maps, offset_maps


def image_ids(frames: list[Frame]) -> list[int]:
    """COCO image ids of ``frames`` as ``to_coco_keypoints`` numbers them: a read file's own, else 1.. in order."""
    return list(frames.image_ids) if isinstance(frames, CocoFrames) else list(range(1, len(frames) + 1))


def detected_people(frames: list[Frame], path: Path, score_thr: float) -> list[Person]:
    """Person boxes of a COCO results file (``image_id``, ``bbox``, ``score``) for ``frames``."""
    dets = read_coco_results(path, image_ids(frames))
    return [
        Person(f, -1, inst.box.copy(), float(inst.score))
        for f, frame in enumerate(dets)
        for inst in frame.instances
        if inst.score > score_thr and inst.box[2] > inst.box[0] and inst.box[3] > inst.box[1]
    ]


def coco_results(frames: list[Frame], persons: list[Person], poses: np.ndarray, kp_thr: float) -> list[dict[str, Any]]:
    """COCO keypoint results for ``frames`` (their COCO image ids, :func:`image_ids`); score = box score x mean of
    the keypoint scores above ``kp_thr`` (mmpose ``bbox_keypoint``; methods.md section 8)."""
    ids = image_ids(frames)
    results = []
    for person, pose in zip(persons, poses, strict=True):
        kp = pose.copy()
        results.append(
            {
                "image_id": ids[person.frame],
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                "score": float(pose_score(person.score, kp[:, 2], kp_thr)),
            }
        )
    return results
