"""A cache that never serves a stale result: files key stages by content (weights, annotation files, image folder
signatures; memoised in and across processes) and the code hash covers each stage's whole import closure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from crowdbench.bench import cache as cache_mod
from crowdbench.bench import digest
from crowdbench.bench.cache import clear_code_cache, import_closure, module_imports
from crowdbench.bench.config import RunConfig
from crowdbench.bench.profiles import base_config
from crowdbench.bench.registry import PLUGIN_MODULES, get_plugin
from crowdbench.bench.stages import detection
from crowdbench.bench.tasks import stage_keys
from crowdbench.datasets.layout import load_split, split_inputs

SHARED = Path("/work/shared/data")
OLD = 1_600_000_000  # an mtime well in the past (files this old are memoised)


@pytest.fixture(autouse=True)
def _memo(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDBENCH_DIGEST_CACHE", str(tmp_path / "memo"))
    digest.clear_memo()
    yield
    digest.clear_memo()


def _write(path: Path, data: bytes, mtime: int = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def _count_reads(monkeypatch) -> list[Path]:
    reads: list[Path] = []
    real = digest._sha256

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(digest, "_sha256", counting)
    return reads


# ------------------------------------------------------------------------------------------------ file digests
def test_file_digest_is_the_content_sha256_and_memoised_in_and_across_processes(tmp_path, monkeypatch):
    import hashlib

    f = _write(tmp_path / "w.pt", b"weights A")
    reads = _count_reads(monkeypatch)
    assert digest.file_digest(f) == hashlib.sha256(b"weights A").hexdigest()
    assert digest.file_digest(f) == digest.file_digest(str(f)) and len(reads) == 1
    digest._memo.clear()  # a new process: the persistent memo answers
    digest._disk = None
    assert digest.file_digest(f) == hashlib.sha256(b"weights A").hexdigest() and len(reads) == 1
    assert json.loads(digest.memo_path().read_text())  # written, valid JSON
    os.utime(f, (OLD + 5, OLD + 5))  # touched: read again, same digest
    assert digest.file_digest(f) == hashlib.sha256(b"weights A").hexdigest() and len(reads) == 2


def test_recently_modified_files_are_never_memoised(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    f.write_bytes(b"new")  # mtime = now: a same-size rewrite in the same timestamp tick must not be missed
    reads = _count_reads(monkeypatch)
    digest.file_digest(f)
    digest.file_digest(f)
    assert len(reads) == 2 and not digest.memo_path().exists()


def test_a_corrupt_memo_is_ignored_and_replaced(tmp_path):
    memo = digest.memo_path()
    memo.parent.mkdir(parents=True)
    memo.write_text('{"truncated": ')
    f = _write(tmp_path / "w.pt", b"abc")
    assert digest.file_digest(f) == digest._sha256(f)
    assert len(json.loads(memo.read_text())) == 1


def test_concurrent_processes_share_one_valid_memo(tmp_path):
    files = [_write(tmp_path / f"f{i}.bin", bytes([i]) * 1000) for i in range(4)]
    code = "import sys; from crowdbench.bench.digest import file_digest; [file_digest(p) for p in sys.argv[1:]]"
    procs = [subprocess.Popen([sys.executable, "-c", code, *map(str, files[i:] + files[:i])]) for i in range(4)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    entries = json.loads(digest.memo_path().read_text())
    assert sorted(entries.values()) == sorted(digest._sha256(f) for f in files)


def test_folder_signature_sees_file_list_sizes_and_mtimes_without_reading(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    _write(folder / "a.jpg", b"xx")
    _write(folder / "v1" / "b.jpg", b"yyy")
    reads = _count_reads(monkeypatch)
    sig = digest.folder_signature(folder)
    assert digest.folder_signature(folder) == sig and not reads

    def fresh() -> str:
        digest.clear_memo()
        return digest.folder_signature(folder)

    assert fresh() == sig
    _write(folder / "v1" / "b.jpg", b"zzz", OLD + 1)
    assert fresh() != sig
    _write(folder / "v1" / "b.jpg", b"yyy")
    assert fresh() == sig
    _write(folder / "v1" / "c.jpg", b"")
    assert fresh() != sig


# --------------------------------------------------------------------------------- Path-valued config settings
def _path_settings(model: type[BaseModel], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, field in model.model_fields.items():
        todo, suffix = [field.annotation], ""
        while todo:
            ann = todo.pop()
            if ann is Path:
                found.add(prefix + name)
            elif isinstance(ann, type) and issubclass(ann, BaseModel):
                found |= _path_settings(ann, f"{prefix}{name}{suffix}.")
            else:
                if typing.get_origin(ann) in (list, tuple):
                    suffix = "[]"
                todo += list(typing.get_args(ann))
    return found


CASES = [  # task, setting, the stage key it must change first
    ("detection", "model.weights", "train"),
    ("detection", "model.kd_teacher", "train"),
    ("pose", "pose.model.weights", "train"),
    ("pose", "pose.test.detections", "infer"),
    ("pose_regression", "regression.model.weights", "train"),
    ("tracking", "tracking.reid.weights", "reid"),
    ("tracking", "tracking.reid.backbone_weights", "reid"),
]


def test_every_path_setting_is_covered():
    members = {"postprocess.fusion[].model.weights", "postprocess.fusion[].model.kd_teacher"}
    members |= {"pose.test.ensemble[].weights"}
    assert _path_settings(RunConfig) == {"data.root", *(c[1] for c in CASES), *members}


def _set(cfg: RunConfig, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    setattr(node, leaf, value)


@pytest.mark.parametrize(("task", "setting", "stage"), CASES)
def test_a_file_overwritten_at_the_same_path_changes_the_key(tmp_path, task, setting, stage):
    cfg = base_config("smoke", task)
    f = _write(tmp_path / "a" / "file.bin", b"version 1")
    _set(cfg, setting, f)
    keys = stage_keys(cfg)
    _write(f, b"version 2", OLD + 10)  # same size, same path
    changed = stage_keys(cfg)
    assert changed[stage] != keys[stage] and changed["evaluate"] != keys["evaluate"]
    _write(f, b"version 1", OLD + 20)  # the old content again (touched): the old keys
    assert stage_keys(cfg) == keys
    moved = tmp_path / "b" / "moved.bin"
    moved.parent.mkdir()
    shutil.move(f, moved)  # moving the file keeps the keys
    _set(cfg, setting, moved)
    assert stage_keys(cfg) == keys
    _set(cfg, setting, tmp_path / "gone.bin")
    with pytest.raises(FileNotFoundError, match=rf"^{setting}={tmp_path}/gone.bin: no such file$"):
        stage_keys(cfg)


def test_fusion_member_and_ensemble_weights_key_by_content(tmp_path):
    f = _write(tmp_path / "m.pt", b"one")
    det = base_config("smoke", "detection")
    get_plugin("detector.model_fusion", {"set": {"model.backbone": "resnet34"}}).apply(det)
    _set(det, "postprocess.fusion.0.model.weights", f)
    det_keys = stage_keys(det)
    p = base_config("smoke", "pose")
    get_plugin("pose_postproc.model_fusion").apply(p)
    _set(p, "pose.test.ensemble.0.weights", f)
    pose_keys = stage_keys(p)
    _write(f, b"two", OLD + 1)
    det_new, pose_new = stage_keys(det), stage_keys(p)
    assert det_new["nms"] == det_keys["nms"] and det_new["postprocess"] != det_keys["postprocess"]
    assert pose_new["train"] == pose_keys["train"]
    assert pose_new["ensemble0"] != pose_keys["ensemble0"] and pose_new["infer"] != pose_keys["infer"]


# ---------------------------------------------------------------------------------------------------- real data
@pytest.fixture
def coco_root(tmp_path) -> Path:
    """A COCO-layout data root from the shared sample: the same annotations for train and val, images linked."""
    root = tmp_path / "data"
    src = SHARED / "coco_keypoints"
    for split in ("train", "val"):
        _write(root / f"coco/annotations/person_keypoints_{split}2017.json", (src / "test_coco.json").read_bytes())
        for image in sorted(src.glob("*.jpg")):
            (root / f"coco/{split}2017").mkdir(parents=True, exist_ok=True)
            (root / f"coco/{split}2017" / image.name).symlink_to(image)
    return root


def _coco_cfg(root: Path) -> RunConfig:
    cfg = base_config("smoke", "detection")
    cfg.data.source, cfg.data.root = "coco", root
    return cfg


def test_split_inputs_list_what_load_split_reads(coco_root):
    files, folders = split_inputs(coco_root, "coco", "val")
    assert files == [coco_root / "coco/annotations/person_keypoints_val2017.json"]
    assert folders == [coco_root / "coco/val2017"]
    assert {Path(f.image).parent for f in load_split(coco_root, "coco", "val")} == {coco_root / "coco/val2017"}
    mot, images = split_inputs(SHARED, "mot17", "train")  # a folder layout: every non-image file under it
    rel = {p.relative_to(SHARED / "mot17/train").as_posix() for p in mot}
    assert {"MOT17-02-FRCNN/seqinfo.ini", "MOT17-02-FRCNN/gt/gt.txt", "MOT17-04-FRCNN/det/det.txt"} <= rel
    assert not any(p.suffix == ".jpg" for p in mot) and images == [SHARED / "mot17/train"]


def test_changed_annotations_or_images_change_the_keys_of_the_stages_reading_them(coco_root, tmp_path):
    cfg = _coco_cfg(coco_root)
    keys = stage_keys(cfg)
    ann = coco_root / "coco/annotations/person_keypoints_val2017.json"
    data = json.loads(ann.read_text())
    data["annotations"][0]["bbox"][0] += 1.0
    _write(ann, json.dumps(data).encode(), OLD + 1)  # the val annotations changed
    changed = stage_keys(cfg)
    assert changed["train"] == keys["train"]
    assert changed["infer"] != keys["infer"] and changed["evaluate"] != keys["evaluate"]

    os.utime(ann, (OLD + 2, OLD + 2))  # touched, same content: same keys
    digest.clear_memo()
    assert stage_keys(cfg) == changed

    shutil.copy(SHARED / "coco_keypoints/000000000785.jpg", coco_root / "coco/train2017/extra.jpg")  # an image more
    digest.clear_memo()
    more = stage_keys(cfg)
    assert more["train"] != changed["train"] and more["infer"] != changed["infer"]

    moved = tmp_path / "elsewhere"
    shutil.move(coco_root, moved)  # the same files elsewhere: the same keys
    digest.clear_memo()
    assert stage_keys(_coco_cfg(moved)) == more


def test_synthetic_data_stays_keyed_by_preset_and_seed():
    cfg = base_config("smoke", "detection")
    sliced = detection.data_slice(cfg.data, "train")
    assert "content" not in sliced and sliced["preset"] == cfg.data.preset and sliced["seed"] == cfg.data.seed


# --------------------------------------------------------------------------------------------- code closure
def test_closure_follows_every_import_form(monkeypatch):
    fake = "crowdbench.bench.fake_for_test"
    source = """
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING
from . import cache
from .stages import detection
from ..datasets.model import Frame
from crowdbench.bench.stages import pose
if TYPE_CHECKING:
    from crowdbench.bench import store
def f():
    from crowdbench.methods.tracking import flow
    importlib.import_module("crowdbench.bench.search")
MODS = ("crowdbench.bench.executor",)
def g():
    for m in MODS:
        importlib.import_module(m)
"""
    real = cache_mod.module_source
    monkeypatch.setattr(cache_mod, "module_source", lambda name: source if name == fake else real(name))
    assert module_imports(fake) == {
        "crowdbench.bench",
        "crowdbench.bench.cache",
        "crowdbench.bench.stages",
        "crowdbench.bench.stages.detection",
        "crowdbench.bench.stages.pose",
        "crowdbench.datasets.model",
        "crowdbench.methods.tracking",
        "crowdbench.methods.tracking.flow",
        "crowdbench.bench.search",
        "crowdbench.bench.executor",
    }


def test_detection_train_closure_has_the_modules_it_uses_but_not_in_its_entry_list():
    closure = import_closure(detection.TRAIN_MODULES)
    for name in ("crowdbench.bench.distributed", "crowdbench.datasets.model", *PLUGIN_MODULES):
        assert name in closure
    assert "crowdbench.bench.distributed" not in detection.TRAIN_MODULES


def test_editing_a_module_only_in_the_closure_changes_the_keys(monkeypatch):
    cfg = base_config("smoke", "detection")
    keys = stage_keys(cfg)
    real = cache_mod.module_source
    for name in ("crowdbench.bench.distributed", "crowdbench.datasets.model"):
        assert name not in detection.TRAIN_MODULES
        edit = {name: real(name) + "\n# an edit"}
        monkeypatch.setattr(cache_mod, "module_source", lambda n, edit=edit: edit.get(n) or real(n))
        clear_code_cache()
        edited = stage_keys(cfg)
        assert edited["train"] != keys["train"] and edited["evaluate"] != keys["evaluate"]
    monkeypatch.setattr(cache_mod, "module_source", real)
    clear_code_cache()
    assert stage_keys(cfg) == keys


SPECS = {
    "detection": "hie-pose/table1",
    "pose": "hie-pose/table5",
    "pose_regression": "pose-regression/table1",
    "tracking": "hie-tracking/table4",
    "pose_tracking": "hie-tracking/table6",
}
USES = {  # the pipelines whose stages a cell of each task runs (detector boxes, pose models, tracks)
    "detection": ["detection"],
    "pose": ["pose", "detection"],
    "pose_regression": ["pose_regression"],
    "tracking": ["tracking", "detection"],
    "pose_tracking": ["pose_tracking", "pose", "tracking", "detection"],
}
PROBE = """
import importlib, json, sys
from pathlib import Path
from crowdbench.bench.config import RunConfig
task, config, run_dir, uses = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
cfg = RunConfig.model_validate_json(config.read_text())
module = importlib.import_module(f"crowdbench.bench.stages.{task}")
from crowdbench.bench.stages.pipeline import run_cell, stage_keys
keys = stage_keys(cfg)
module.TASK.metric_keys(cfg)
if run_dir:
    from crowdbench.bench.cache import StageCache
    outcome = run_cell(cfg, StageCache(Path(run_dir)), "cpu")
    assert outcome.stage_keys == keys and outcome.metrics
loaded = {m for m in sys.modules if m == "crowdbench" or m.startswith("crowdbench.")}
from crowdbench.bench.cache import import_closure
hashed = set()
for name in uses:
    stages = importlib.import_module(f"crowdbench.bench.stages.{name}")
    for attr, value in vars(stages).items():
        if attr.endswith("_MODULES") and isinstance(value, tuple):
            hashed.update(import_closure(value))
print(json.dumps({"loaded": sorted(loaded), "unhashed": sorted(loaded - hashed)}))
"""
RUN_TINY = {  # the cells run for real, with the settings that make them tiny
    "detection": {
        "data.preset": "tiny",
        "data.max_val_images": 2,
        "train.iterations": 2,
        "train.batch_size": 2,
        "train.warmup_iters": 1,
        "train.checkpoint_every": 2,
        "infer.batch_size": 2,
    }
}


@pytest.mark.parametrize("task", list(SPECS))
def test_every_module_a_pipeline_imports_is_in_its_stages_code_hash(task, tmp_path):
    """Imports the pipeline's stage module in a fresh process, computes the stage keys of a table's smoke cell (and
    runs a tiny detection cell for real), then checks that every ``crowdbench`` module loaded is in the import
    closure of that pipeline's stages: a module a stage uses but its hash misses fails here."""
    from crowdbench.bench.config import set_dotted
    from crowdbench.bench.matrix import expand
    from crowdbench.bench.specs import load_spec

    cfg = expand(load_spec(SPECS[task]))[0].config
    run_dir = ""
    if task in RUN_TINY:
        for key, value in RUN_TINY[task].items():
            set_dotted(cfg, key, value)
        cfg.device, run_dir = "cpu", str(tmp_path / "run")
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    env = {**os.environ, "CROWDBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, task, str(tmp_path / "cfg.json"), run_dir, ",".join(USES[task])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert f"crowdbench.bench.stages.{task}" in result["loaded"]
    assert result["unhashed"] == []


def test_the_table_spec_schema_is_outside_every_stage_closure():
    """A spec reaches a stage key through its resolved config only: editing ``bench/specs.py`` (a new field, a
    description) must not invalidate cached stages (``bench/recipes.py`` finds its folder without importing it)."""
    import importlib

    for name in ("data", "detection", "pose", "pose_regression", "pose_tracking", "tracking"):
        stages = importlib.import_module(f"crowdbench.bench.stages.{name}")
        for attr, value in vars(stages).items():
            if attr.endswith("_MODULES") and isinstance(value, tuple):
                assert "crowdbench.bench.specs" not in import_closure(value), (name, attr)
