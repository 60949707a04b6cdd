"""Typed run configuration (pydantic). One :class:`RunConfig` fully determines one cell of a table.

Each stage reads one slice of it (:data:`STAGE_SLICES`); the slice, the keys of the stage's inputs and the
code version of the modules it runs make the stage's content-addressed cache key (``bench/cache.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crowdbench.datasets.extra import EXTRA_DATASETS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Which frames to train and evaluate on: the synthetic generator, or a dataset of ``datasets/layout.py``."""

    source: str = Field("synthetic", description="'synthetic' or a dataset key of datasets/layout.py LAYOUTS")
    preset: str = Field("small", description="synthetic preset: tiny | small | medium | hie")
    scenario: str = Field(
        "plain",
        description="synthetic scenario (datasets/synthetic.py SCENARIOS): the mechanisms the data contains; the "
        "smoke profile takes the table spec's smoke_scenario",
    )
    seed: int = Field(
        0,
        description="seed of the synthetic data; it does not follow the training seed, so every seed (and row) is "
        "tested on the same crowds and effects pair on one test set (docs/architecture.md, Uncertainty)",
    )
    root: Path | None = Field(None, description="dataset folder for real data (--data-root)")
    train_split: str = "train"
    val_split: str = "val"
    holdout_videos: tuple[str, ...] = Field(
        (), description="videos of the train split held out as the validation split (HIE: 3, 7, 8, 17)"
    )
    extra_train: tuple[str, ...] = Field(
        (), description="more datasets whose train split is added to the training frames (e.g. crowdhuman)"
    )
    extra_weights: tuple[float, ...] = Field(
        (), description="per extra_train dataset: fraction of its frames used (>1 repeats them); empty = all 1"
    )
    max_val_images: int | None = None
    val_videos: int | None = Field(
        None,
        ge=1,
        description="synthetic data only: validation videos to generate (default: the preset's). The first ones are "
        "the preset's videos; more videos narrow the bootstrap intervals (issue 22: a table's smoke_settings)",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        # deferred: start-up (numpy)
        from crowdbench.datasets.layout import LAYOUTS

        if value != "synthetic" and value not in LAYOUTS:
            raise ValueError(f"unknown data source {value!r}; known: synthetic, {', '.join(LAYOUTS)}")
        return value

    @field_validator("val_videos")
    @classmethod
    def _synthetic_only(cls, value: int | None, info: Any) -> int | None:
        if value is not None and info.data.get("source", "synthetic") != "synthetic":
            raise ValueError(
                "data.val_videos sets how many synthetic validation videos to generate; real data has its own"
            )
        return value

    @field_validator("extra_train")
    @classmethod
    def _known_extra(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in value if v not in EXTRA_DATASETS]
        if unknown:
            raise ValueError(f"unknown extra_train datasets {unknown}; known: {', '.join(EXTRA_DATASETS)}")
        return value


class DetectorConfig(_Strict):
    """torchvision Faster R-CNN (FPN or C4, plain or Cascade heads), with the CrowdDet multi-instance head
    (methods.md section 1; architectures of paper 000 Table 1)."""

    backbone: str = Field("resnet18", description="a trunk of methods/detection/backbones.py TRUNKS")
    fpn: bool = Field(True, description="FPN (P2-P6); false: C4 Faster R-CNN (layer3 features, layer4 box head)")
    weights: Path | None = Field(None, description="local ImageNet weights for the backbone; none = scratch")
    trainable_layers: int = 5
    fpn_channels: int = 256
    representation_size: int = 1024
    min_size: int = 800
    max_size: int = 1400
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.5
    detections_per_img: int = 1000
    # CrowdDet (Chu et al. 2020): predictions per proposal, EMD set loss, refinement module.
    k: int = Field(1, ge=1, le=3)
    emd: bool = False
    refine: bool = False
    # Tf-KD on the R-CNN class logits (Yuan et al. 2020; methods/detection/kd.py, methods.md section 2).
    kd: Literal["off", "reg", "self", "lsr"] = "off"
    kd_alpha: float = Field(0.1, ge=0.0, le=1.0, description="KD weight (reference reg ResNet-18: 0.1)")
    kd_tau: float = Field(20.0, gt=0.0, description="temperature (reference reg ResNet-18: 20)")
    kd_multiplier: float = Field(100.0, ge=0.0, description="extra KL multiplier m (reference reg ResNet-18: 100)")
    kd_a: float = Field(0.99, gt=0.0, lt=1.0, description="designed teacher's correct-class probability")
    kd_eps: float = Field(0.1, gt=0.0, lt=1.0, description="label smoothing epsilon (kd = lsr)")
    kd_teacher: Path | None = Field(None, description="kd = self: teacher state dict; none = the baseline cell's")
    kd_reduction: Literal["element_mean", "batchmean"] = Field("element_mean", description="KL reduction")
    kd_student_tau_in_reg: bool = Field(False, description="student p_tau in reg (paper); reference code: p")
    # Cascade R-CNN (Cai & Vasconcelos, CVPR 2018): one R-CNN stage per IoU threshold, loss weights per stage.
    cascade: bool = False
    cascade_ious: tuple[float, ...] = Field((0.5, 0.6, 0.7), description="stage IoU thresholds (one per stage)")
    cascade_weights: tuple[float, ...] = Field((1.0, 0.5, 0.25), description="stage loss weights (as many)")


class TrainConfig(_Strict):
    """SGD schedule (CrowdDet defaults, methods.md section 1 "Training defaults")."""

    iterations: int = 56250
    batch_size: int = 2
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 800
    warmup_factor: float = 0.33
    lr_steps: tuple[float, ...] = Field((0.8, 0.9), description="fractions of iterations where LR x 0.1")
    hflip: bool = True
    grad_clip: float | None = 10.0
    amp: bool = Field(True, description="mixed precision when on CUDA (ignored on CPU)")
    checkpoint_every: int = 200
    num_workers: int = 0


class InferConfig(_Strict):
    score_thresh: float = Field(0.01, description="drop raw boxes with score <= this (CrowdDet test.py)")
    batch_size: int = 4


class FusionMember(_Strict):
    """A second detector of a fused cell (plugin ``detector.model_fusion``): its model, schedule and NMS; data,
    inference and evaluation are the cell's own. It trains as its own cell (shared with any row training it)."""

    model: DetectorConfig
    train: TrainConfig
    nms: Literal["normal", "set", "none"] = "normal"
    nms_iou: float = 0.5
    weight: float = Field(1.0, gt=0.0, description="its box weight; the cell's own model has weight 1")


class PostprocessConfig(_Strict):
    nms: Literal["normal", "set", "none"] = "normal"
    nms_iou: float = 0.5
    score_thresh: float = 0.01
    max_dets: int | None = None
    fusion: list[FusionMember] = Field(
        default_factory=list, description="more detectors fused with this one by WBF after each one's NMS"
    )
    fusion_iou: float = Field(0.55, gt=0.0, le=1.0, description="WBF cluster IoU (Solovyev et al. 2021)")
    fusion_skip: float = Field(0.0, ge=0.0, description="WBF: boxes scoring below this are left out")


class EvaluateConfig(_Strict):
    """``crowdhuman``: AP / mMR / JI as CrowdDet (metrics.md 3); ``coco_box``: pycocotools box AP/AR;
    ``coco_keypoints``: OKS AP/AR + AP-vis/AP-invis (metrics.md 1); ``crowdpose``: CrowdPose AP (metrics.md 2);
    ``hie_wap``: HIE2020 pose w-AP on the 14 HIE joints (metrics.md 4; ``bench/metrics/hie_wap.py``, its default
    ``people`` weighting, since the official one is unpublished); ``mot``: CLEAR MOT + identity metrics with
    TrackEval semantics (metrics.md 5; ``bench/metrics/mot.py``); ``posetrack``: poseval's per-joint AP (PCKh 0.5)
    and MOTA / MOTP of pose tracks (metrics.md 5.1; ``bench/metrics/posetrack.py``)."""

    metric: Literal["crowdhuman", "coco_box", "coco_keypoints", "crowdpose", "hie_wap", "mot", "posetrack"] = (
        "crowdhuman"
    )
    # poseval's quirks (bench/metrics/posetrack.py evaluate_posetrack_tracking), on as poseval computes them
    skip_last_frame: bool = Field(True, description="posetrack MOTA: drop each video's last evaluated frame (poseval)")
    empty_frame_dummy: bool = Field(
        True, description="posetrack MOTA: a frame without predictions counts one dummy miss + false positive (poseval)"
    )
    motp_all_events: bool = Field(True, description="posetrack MOTP over every distance event row (poseval)")
    # uncertainty (bench/metrics/bootstrap.py): never changes a value, only its interval
    bootstrap: int = Field(
        1000, ge=0, description="bootstrap resamples of the test units kept with every record (0: no intervals)"
    )
    bootstrap_seed: int = Field(0, description="seed of the replicate weights (the same for every row: paired)")
    block_frames: int = Field(50, ge=1, description="tracking metrics: frames per resampled block of a sequence")


class PoseModelConfig(_Strict):
    """Top-down pose network (methods.md section 8): SimpleBaseline (ResNet + deconvolutions) or HRNet (timm)."""

    arch: Literal["simplebaseline", "hrnet"] = "hrnet"
    backbone: str = Field("resnet50", description="SimpleBaseline's ResNet")
    hrnet_width: int = Field(32, description="HRNet width: 32, 48 (timm), 18 (w18-small) or a tiny custom one")
    deconv_layers: int = Field(3, ge=1, le=3, description="SimpleBaseline deconvolutions: heatmap stride 32 / 2^n")
    deconv_channels: int = 256
    fpn: bool = Field(False, description="SimpleBaseline + FPN (the HIE papers' SimpleNet)")
    offsets: bool = Field(False, description="2K-channel offset branch (offset-guided paper section 3.1.2)")
    weights: Path | None = Field(None, description="local ImageNet weights for the backbone; none = scratch")
    input_size: tuple[int, int] = Field((192, 256), description="network input (width, height)")


class PoseTrainConfig(_Strict):
    """Adam with the HRNet schedule (methods.md sections 3 and 8); epochs come from ``schedule`` x ``epoch_scale``."""

    schedule: Literal["baseline", "s1", "s2", "s3"] = Field("s1", description="S1 = the HRNet schedule")
    epoch_scale: float = Field(1.0, gt=0, description="scales every epoch count of the schedule (smoke < 1)")
    samples_per_epoch: int | None = Field(None, description="person crops per epoch; none = every training person")
    batch_size: int = 32
    lr: float = 1e-3
    udp: bool = Field(False, description="unbiased data processing (Huang et al. 2020; plugin udp); false = MSRA")
    target: Literal["gaussian", "disk_offset"] = "gaussian"
    sigma: float = 2.0
    disk_radius: float = Field(0.0546875, description="disk radius as a fraction of the heatmap height")
    disk_radius_min: float = Field(
        1.5, ge=0.0, description="floor of the disk radius in heatmap pixels (paper 003 gives no R; see radius_px)"
    )
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    scale_factor: float = 0.35
    rot_factor: float = 45.0
    rot_prob: float = 0.6
    box_padding: float = 1.25
    occlusion: Literal["none", "keypoint_aware", "cutout", "hide_and_seek"] = "none"
    occlusion_prob: float = 1.0
    min_keypoints: int = Field(1, description="train on people with at least this many labeled joints")
    eval_every: int = Field(1, ge=0, description="validation AP every N epochs during training (0 = never)")
    amp: bool = True
    num_workers: int = 0


class PoseTestConfig(_Strict):
    """Test-time options (methods.md section 8)."""

    boxes: Literal["gt", "detections", "detector"] = Field(
        "gt", description="gt | detections (a COCO results file) | detector (the detection pipeline's own model)"
    )
    detections: Path | None = Field(None, description="person detections, COCO results JSON (boxes = detections)")
    det_score_thr: float = Field(0.0, description="drop detections scoring at or below this")
    detector_set: dict[str, Any] = Field(
        default_factory=dict,
        description="dotted overrides of the detector cell (boxes = detector), e.g. train.iterations",
    )
    gbg: bool = Field(False, description="Greedy Box Generation on the detector's raw (pre-NMS) boxes (paper 003)")
    gbg_min_size: float = Field(0.0, description="GBG: drop boxes whose shorter side is below this (pixels)")
    gbg_egt_thr: float = 0.8
    gbg_drop_iou: float = 0.5
    gbg_group_iou: float = 0.7
    gbg_top_n: int = 4
    pose_nms: Literal["none", "and", "or", "sequential"] = Field(
        "none", description="box-IoU + OKS NMS after pose (paper 003: IoU 0.6, OKS 0.75; combination rule unstated)"
    )
    pose_nms_iou: float = 0.6
    pose_nms_oks: float = 0.75
    flip_test: bool = Field(False, description="average with the flipped crop's heatmaps (plugin pose_postproc.flip)")
    multiscale: tuple[float, ...] = Field((1.0,), description="scales whose heatmaps are averaged (methods.md 8)")
    multiscale_mode: Literal["input", "box"] = Field(
        "input",
        description="input: the same crop, network input resized by s (reading A of methods.md 8); box: the person "
        "box scaled by s, same input size, heatmaps warped into the s = 1 crop (reading B; paper 000 section 4.3)",
    )
    ensemble: list[PoseModelConfig] = Field(
        default_factory=list,
        description="more trained models whose heatmaps are averaged with the cell's own (paper 000 sections 3.1 and "
        "4.3: HRNet + SimpleNet fusion, 256 x 192 + 384 x 288 multi-scale input); each trains as its own model",
    )
    ensemble_weights: tuple[float, ...] = Field(
        (), description="heatmap weights of the cell's model and then each ensemble member; empty = equal"
    )
    batch_size: int = 64
    kp_score_thr: float = 0.2
    oks_nms: float | None = Field(None, description="OKS-NMS threshold; none = no pose NMS (ground-truth boxes)")
    soft_oks_nms: float | None = Field(None, description="soft-OKS-NMS threshold (rescoring instead of removal)")
    soft_oks_method: Literal["gaussian", "linear"] = "gaussian"
    soft_oks_max_dets: int = 20


class PoseConfig(_Strict):
    model: PoseModelConfig = Field(default_factory=PoseModelConfig)
    train: PoseTrainConfig = Field(default_factory=PoseTrainConfig)
    test: PoseTestConfig = Field(default_factory=PoseTestConfig)


class ReIDConfig(_Strict):
    """Appearance embeddings for DeepSORT (paper 004 section 3.2; methods.md section 7): a ReID network trained on
    the identities (video, track id) of the training split, or loaded from ``weights``."""

    enabled: bool = Field(True, description="false: DeepSORT without appearance (IoU matching only)")
    arch: Literal["small", "resnet50"] = Field("resnet50", description="small CNN (smoke) or ResNet-50 (full)")
    dim: int = 128
    input_hw: tuple[int, int] = Field((128, 64), description="crop height x width")
    iterations: int = 20000
    ids_per_batch: int = Field(16, description="P identities x K crops per batch (batch-hard sampling)")
    crops_per_id: int = 4
    lr: float = 3e-4
    weights: Path | None = Field(None, description="a trained ReID state dict (skips training)")
    backbone_weights: Path | None = Field(None, description="local ImageNet weights of the ResNet-50 trunk")
    flip: bool = Field(False, description="add the horizontally flipped crop's features (paper 004 Table 5)")
    scales: tuple[float, ...] = Field((1.0,), description="box scales whose features are summed (paper 004 Table 5)")


class DeepSortConfig(_Strict):
    """DeepSORT parameters (Wojke et al. 2017; paper 004 Table 4 grid; reference-app detection filters)."""

    max_cosine_distance: float = 0.2
    nn_budget: int | None = 100
    max_age: int = 30
    n_init: int = 3
    max_iou_distance: float = 0.7
    min_confidence: float = Field(0.8, description="detections scoring below this are not tracked (app default)")
    nms_max_overlap: float = 1.0
    min_height: float = 0.0


class TrackingConfig(_Strict):
    """Box tracking (paper 004): person boxes -> ReID embeddings -> DeepSORT (-> flow box smoothing) -> MOT metrics
    on ``data.val_split``."""

    boxes: Literal["gt", "detector"] = Field(
        "detector", description="detector: the detection pipeline's own model; gt: ground-truth boxes (a check)"
    )
    detector_set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the detector cell")
    reid: ReIDConfig = Field(default_factory=ReIDConfig)
    deepsort: DeepSortConfig = Field(default_factory=DeepSortConfig)
    box_smoothing: float | None = Field(
        None, description="weight of the flow-propagated previous box (paper 004 section 2.1: 0.5); none = off"
    )
    flow: Literal["dis_fast", "dis_medium", "dis_ultrafast", "farneback"] = "dis_medium"
    flow_scale: float = Field(1.0, gt=0.0, le=1.0, description="compute flow at this fraction of the resolution")


class PoseTrackingConfig(_Strict):
    """Pose tracking: ids for the poses of every frame, optionally smoothed by optical flow, scored with poseval.

    ``deepsort`` (paper 004 section 4.3): DeepSORT (``tracking``) tracks the detector's boxes, a pose is estimated
    in every tracked box and takes its id. ``iou_reid`` (paper 003 section 4.2): poses are estimated in the
    detector's boxes (``pose.test``, e.g. GBG + pose NMS), then matched frame to frame by box IoU plus the ReID
    features' Euclidean distance (Detect-and-Track with appearance); ``propagation`` adds FlowTrack's joint
    propagation (the previous frame's poses moved by optical flow give extra boxes, and the IoU term compares the
    moved boxes)."""

    tracker: Literal["deepsort", "iou_reid"] = "deepsort"
    appearance_weight: float = Field(1.0, ge=0.0, description="iou_reid: lambda of the ReID distance (0: IoU only)")
    max_cost: float = Field(0.7, gt=0.0, description="iou_reid: pairs costing more are not matched")
    max_age: int = Field(1, ge=1, description="iou_reid: frames a track may go unmatched and still be matched")
    min_score: float = Field(0.5, description="iou_reid: persons scoring below this are not tracked nor written")
    propagation: bool = Field(False, description="iou_reid: FlowTrack joint propagation + flow-moved IoU")
    propagation_margin: float = Field(0.15, ge=0.0, description="enlargement of a propagated pose's box")
    propagation_nms: float = Field(0.5, gt=0.0, le=1.0, description="propagated boxes overlapping more are dropped")
    propagation_kp_thr: float = Field(0.3, description="joints scoring above this span a propagated box")
    smoothing: float | None = Field(
        None, ge=0.0, le=0.5, description="alpha of paper 000 eq. 1 (optical-flow pose smoothing); none = off"
    )
    smoothing_thr: float = Field(0.2, description="neighbour joints scoring at or below this are not used")
    smoothing_missing: Literal["keep", "renormalise"] = Field(
        "keep", description="keep: smooth a joint only when both neighbours have it (paper 000 section 3.2)"
    )
    kp_thr: float = Field(
        0.4, description="joints scoring at or below this are not submitted (a common PoseTrack choice; none stated)"
    )


class RegressionModelConfig(_Strict):
    """Single-stage pose regression network (paper 002 section 4, Fig. 2; methods.md section 4): a ResNet or HRNet
    trunk, FPN P3-P7 and one head shared by the levels (``methods/pose/regression/model.py``)."""

    backbone: str = Field("resnet50", description="resnet18/34/50/101/152 (torchvision) or hrnet_w18_small/w32 (timm)")
    weights: Path | None = Field(None, description="local ImageNet weights of the trunk; none = scratch")
    frozen_bn: bool = Field(False, description="freeze the trunk's BatchNorm (SMPR with ImageNet weights)")
    fpn_channels: int = 256
    tower_convs: int = Field(4, ge=1, description="3x3 conv + GroupNorm + ReLU blocks per tower (FCOS: 4)")
    gn_groups: int = 32
    strides: tuple[int, ...] = Field((8, 16, 32, 64, 128), description="P3-P7")
    size_bounds: tuple[float, ...] = Field(
        (64.0, 128.0, 256.0, 512.0),
        description="FCOS level ranges: a person goes to level i when max(l, t, r, b) lies in (b[i-1], b[i]]",
    )
    feature_align: bool = Field(False, description="second stage on deformable convs sampled at the initial pose")
    deform_groups: int = Field(4, ge=1, description="offset groups of the alignment's deformable convs (SMPR: 4)")
    deform_impl: Literal["auto", "torchvision", "grid_sample"] = Field(
        "auto", description="deformable conv: torchvision's op, or the same function via grid_sample (auto: CPU)"
    )
    heatmap_aux: bool = Field(False, description="auxiliary keypoint-class heatmaps on P3 (training only)")
    heatmap_channels: int = 128
    centerness: bool = Field(False, description="FCOS centre-ness branch (trained; see test.scorer)")
    psm: bool = Field(False, description="pose scoring branch, trained towards the OKS of the prediction (section 3.2)")


class RegressionTrainConfig(_Strict):
    """Targets, losses and schedule (paper 002 section 5.1; SMPR config where the paper is silent, methods.md 4)."""

    epochs: float = Field(24.0, gt=0, description="paper: 24 for ablations, 31 for Table 3's Baseline*")
    epoch_scale: float = Field(1.0, gt=0, description="scales epochs (smoke < 1)")
    batch_size: int = 8
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_factor: float = 1.0 / 3.0
    lr_steps: tuple[float, ...] = Field((0.8, 0.9), description="fractions of training where LR x 0.1 (SMPR 80/90)")
    grad_clip: float | None = 35.0
    hflip: bool = True
    min_size: int = Field(800, description="resize: shorter side (0 = keep the image size)")
    max_size: int = 1333
    crop: int | None = Field(800, description="random square crop after resizing (section 5.1); none = no crop")
    center_sampling: bool = Field(False, description="positives only near the keypoints' centre (section 4)")
    center_radius: float = Field(1.5, gt=0, description="centre-sampling radius in strides (FCOS / SMPR: 1.5)")
    oks_filter: bool = Field(False, description="refinement losses only on initial poses with OKS >= oks_pos (3.1)")
    oks_pos: float = Field(0.5, ge=0, le=1, description="OKSFilter threshold (paper: 0.5)")
    oks_neg: float = Field(
        0.5, ge=0, le=1, description="below it a location is a negative; [oks_neg, oks_pos) ignored (SMPR: 0.4)"
    )
    oks_keep_best: bool = Field(True, description="each person's best initial pose passes the filter (SMPR)")
    reg_loss: Literal["smooth_l1", "l1"] = Field("smooth_l1", description="paper: smooth L1; SMPR code: L1")
    smooth_l1_beta: float = Field(1.0 / 9.0, gt=0, description="in strides")
    reg_weighting: Literal["oks", "uniform"] = Field("oks", description="weight each location's pose loss by OKS")
    psm_target: Literal["refined", "initial"] = Field(
        "refined", description="OKS of which pose PSM learns (paper: the predicted pose; SMPR code: the initial one)"
    )
    loss_cls: float = 1.0
    loss_heatmap: float = 4.0
    loss_initial: float = 0.05
    loss_refined: float = 0.1
    loss_psm: float = 1.0
    loss_centerness: float = 1.0
    amp: bool = True
    checkpoint_every: int = 200
    num_workers: int = 0


class RegressionTestConfig(_Strict):
    """Inference (paper 002 section 5.1 "Testing"; SMPR test config)."""

    scorer: Literal["none", "centerness", "psm"] = Field(
        "none", description="score = cls x this branch (Table 2's 'using centerness' / 'using PSM')"
    )
    score_thr: float = Field(0.05, description="drop locations whose classification score is at or below this")
    pre_nms_top_n: int = Field(1000, description="per level, by classification score")
    nms: Literal["soft", "hard"] = "soft"
    nms_iou: float = Field(0.3, description="IoU of the pseudo boxes (soft-NMS linear: rescored above this)")
    soft_min_score: float = 1e-3
    max_dets: int = 20
    batch_size: int = 8
    timing_images: int = Field(50, ge=0, description="images timed at batch 1 for the seconds-per-image column")


class RegressionConfig(_Strict):
    model: RegressionModelConfig = Field(default_factory=RegressionModelConfig)
    train: RegressionTrainConfig = Field(default_factory=RegressionTrainConfig)
    test: RegressionTestConfig = Field(default_factory=RegressionTestConfig)


class RuntimeConfig(_Strict):
    """How a cell's process computes (``bench/device.py: apply_runtime``); the same on every executor, so one config
    gives the same numbers whichever executor runs it. Part of the config hash and of the train stage's identity."""

    threads: int = Field(
        2,
        ge=1,
        description="CPU intra-op threads of the cell's process (torch and OpenCV). The thread count changes the "
        "order of floating-point sums on CPU, so it is pinned per cell instead of following the executor's CPUs. "
        "2: what every executor here can give (a 2-core machine, a 1-CPU Ray or SLURM slot oversubscribed)",
    )
    deterministic: bool = Field(
        True,
        description="torch.use_deterministic_algorithms (warn only), cuDNN deterministic and no cudnn.benchmark; "
        "false: cudnn.benchmark autotuning on CUDA (faster, run-to-run noise)",
    )


class RunConfig(_Strict):
    """Everything one cell (table row x seed x profile) needs."""

    task: Literal["detection", "pose", "pose_regression", "tracking", "pose_tracking"] = "detection"
    profile: Literal["smoke", "full"] = "smoke"
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    data: DataConfig = Field(default_factory=DataConfig)
    model: DetectorConfig = Field(default_factory=DetectorConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    pose: PoseConfig = Field(default_factory=PoseConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    pose_tracking: PoseTrackingConfig = Field(default_factory=PoseTrackingConfig)
    regression: RegressionConfig = Field(default_factory=RegressionConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    plugins: list[str] = Field(default_factory=list, description="plugins applied, in order (for the record)")

    @property
    def level(self) -> str:
        """Reproduction level: ``smoke`` on synthetic data (also synthetic data written to disk and read back
        through a real-data reader), ``full`` on real data."""
        # deferred: start-up (cv2, numpy)
        from crowdbench.datasets.synthetic import SYNTHETIC_MARKER

        if self.data.source == "synthetic":
            return "smoke"
        if self.data.root is not None and (Path(self.data.root) / SYNTHETIC_MARKER).exists():
            return "smoke"
        return "full"


def set_dotted(cfg: BaseModel, dotted: str, value: Any) -> None:
    """Set ``cfg.a.b = value`` from ``"a.b"``; an unknown key lists the valid ones at that level."""
    *parents, leaf = dotted.split(".")
    node: BaseModel = cfg
    for i, part in enumerate(parents):
        if part not in type(node).model_fields:
            raise KeyError(_unknown(dotted, parents[:i], part, node))
        node = getattr(node, part)
    if leaf not in type(node).model_fields:
        raise KeyError(_unknown(dotted, parents, leaf, node))
    setattr(node, leaf, value)


def _unknown(dotted: str, prefix: list[str], part: str, node: BaseModel) -> str:
    where = ".".join(prefix) or "config"
    return f"unknown option {dotted!r}: {where} has no {part!r}; valid: {', '.join(type(node).model_fields)}"
