"""Issue 20: bad input never becomes a number (nor a traceback).

Every ``crowdbench eval ...`` and ``crowdbench data inspect|check`` entry point answers an unreadable file, a folder
where a file is expected, JSON nested deeper than the parser allows, an absurd frame number and a non-numeric field
with one ``error:`` line (exit 2, nothing written); a closed stdout pipe ends quietly; ``--json`` is strict JSON;
``crowdbench data inspect FOLDER`` finds the annotation files of every shared sample folder.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from badinput import expect_bad, files_under  # tests/ is on sys.path (rootdir import mode)

from crowdbench.bench.cli import main
from crowdbench.bench.jsonout import strict_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared sample data absent")
DEEP = "[" * 20_000 + "]" * 20_000  # far beyond the interpreter's recursion limit


def _bad(argv: list[str], tmp_path: Path, capsys, monkeypatch, *needles: str) -> str:
    return expect_bad(argv, tmp_path, capsys, monkeypatch, *needles)


@pytest.fixture()
def samples(tmp_path: Path) -> dict[str, Path]:
    """Small valid inputs of every eval command (copies of the shared samples, or tiny hand-made ones)."""
    d = tmp_path / "in"
    d.mkdir()
    out = {}
    if DATA.is_dir():
        out["odgt"] = Path(shutil.copy(DATA / "crowdhuman" / "test_annotation_train.odgt", d))
        out["coco"] = Path(shutil.copy(DATA / "coco_keypoints" / "test_coco.json", d))
        out["crowdpose"] = Path(shutil.copy(DATA / "crowdpose" / "test_crowdpose.json", d))
        hie = json.loads(out["crowdpose"].read_text())  # 14 keypoints, as HIE
        for k, img in enumerate(hie["images"]):
            img["video_id"] = str(k % 2)
        for a in hie["annotations"]:
            a.setdefault("area", a["bbox"][2] * a["bbox"][3])
        out["hie"] = d / "hie.json"
        out["hie"].write_text(json.dumps(hie))
        out["pt_gt"] = Path(shutil.copytree(DATA / "posetrack18" / "annotations" / "val", d / "pt_gt"))
        out["pt_pred"] = Path(shutil.copytree(DATA / "posetrack18" / "annotations" / "val", d / "pt_pred"))
    (d / "empty.json").write_text("[]")
    out["empty"] = d / "empty.json"
    seq = d / "mot" / "SEQ-01"
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,40,1,1,1\n2,1,12,10,20,40,1,1,1\n")
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-01\nseqLength=2\n")
    (d / "mot_pred").mkdir()
    (d / "mot_pred" / "SEQ-01.txt").write_text("1,1,10,10,20,40,1,-1,-1,-1\n")
    out["mot_gt"], out["mot_pred"] = d / "mot", d / "mot_pred"
    return out


def _commands(s: dict[str, Path]) -> dict[str, list[str]]:
    """Each eval entry point on valid input (the tests swap one argument for a bad one); only those whose inputs
    exist (the shared samples may be absent)."""
    inputs = {
        "crowdhuman": ("odgt", "empty"),
        "coco-keypoints": ("coco", "empty"),
        "coco-box": ("coco", "empty"),
        "crowdpose": ("crowdpose", "empty"),
        "hie-wap": ("hie", "empty"),
        "posetrack": ("pt_gt", "pt_pred"),
        "mot": ("mot_gt", "mot_pred"),
    }
    return {
        name: ["eval", name, "--gt", str(s[gt]), "--pred", str(s[pred])]
        for name, (gt, pred) in inputs.items()
        if gt in s and pred in s
    }


EVALS = ("crowdhuman", "coco-keypoints", "coco-box", "crowdpose", "hie-wap", "posetrack", "mot")


def _swap(argv: list[str], flag: str, value: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = str(value)
    return argv


def _gt_file(name: str, s: dict[str, Path]) -> Path:
    """The file an eval command reads first."""
    return {
        "crowdhuman": s["odgt"],
        "coco-keypoints": s["coco"],
        "coco-box": s["coco"],
        "crowdpose": s["crowdpose"],
        "hie-wap": s["hie"],
        "posetrack": s["pt_gt"] / "003418_mpii_test.json",
        "mot": s["mot_gt"] / "SEQ-01" / "gt" / "gt.txt",
    }[name]


def _deny(monkeypatch, target: Path) -> None:
    """Opening ``target`` raises PermissionError (tests run as root, where chmod 000 does not stop reads)."""
    real = builtins.open
    target = str(target)

    def fake_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and os.fspath(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)


@needs_data
@pytest.mark.parametrize("name", EVALS)
def test_eval_unreadable_file(name, samples, tmp_path, capsys, monkeypatch):
    target = _gt_file(name, samples)
    _deny(monkeypatch, target)
    _bad(_commands(samples)[name], tmp_path, capsys, monkeypatch, str(target), "permission denied")


@needs_data
@pytest.mark.parametrize("name", [n for n in EVALS if n not in ("posetrack", "mot")])  # those take folders
def test_eval_folder_instead_of_file(name, samples, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in" / "dir.json"
    folder.mkdir()
    err = _bad(_swap(_commands(samples)[name], "--pred", folder), tmp_path, capsys, monkeypatch, str(folder))
    assert "a folder, not a file" in err


@needs_data
@pytest.mark.parametrize("name", [n for n in EVALS if n != "mot"])
def test_eval_json_nested_too_deeply(name, samples, tmp_path, capsys, monkeypatch):
    if name == "posetrack":
        deep = samples["pt_pred"] / "003418_mpii_test.json"
        deep.write_text(DEEP)
        argv = _commands(samples)[name]
    elif name == "crowdhuman":
        deep = tmp_path / "in" / "deep.odgt"
        deep.write_text(DEEP + "\n")
        argv = _swap(_commands(samples)[name], "--gt", deep)
    else:
        deep = tmp_path / "in" / "deep.json"
        deep.write_text(DEEP)
        argv = _swap(_commands(samples)[name], "--pred", deep)
    _bad(argv, tmp_path, capsys, monkeypatch, str(deep), "nested deeper")


def test_mot_absurd_frame_number(samples, tmp_path, capsys, monkeypatch):
    gt = samples["mot_gt"] / "SEQ-01" / "gt" / "gt.txt"
    gt.write_text("1,1,10,10,20,40,1,1,1\n1000000000000,1,12,10,20,40,1,1,1\n")
    (samples["mot_gt"] / "SEQ-01" / "seqinfo.ini").unlink()
    _bad(_commands(samples)["mot"], tmp_path, capsys, monkeypatch, f"{gt}:2:", "frame", "10,000,000")
    (samples["mot_gt"] / "SEQ-01" / "seqinfo.ini").write_text("[Sequence]\nseqLength=1000000000000\n")
    gt.write_text("1,1,10,10,20,40,1,1,1\n")
    _bad(_commands(samples)["mot"], tmp_path, capsys, monkeypatch, "seqinfo.ini", "seqLength")


@needs_data
def test_posetrack_absurd_frame_number(samples, tmp_path, capsys, monkeypatch):
    path = samples["pt_pred"] / "003418_mpii_test.json"
    data = json.loads(path.read_text())
    data["images"][0]["frame_id"] = 10**12
    data["images"][0]["file_name"] = "images/val/003418_mpii_test/999999999999.jpg"
    path.write_text(json.dumps(data))
    # the PoseTrack reader (inspect, training data, writers) indexes frames by number; the metric keeps file order
    argv = ["data", "inspect", str(samples["pt_pred"])]
    _bad(argv, tmp_path, capsys, monkeypatch, str(path), "image 0", "frame number 999999999999", "10,000,000")


@needs_data
@pytest.mark.parametrize(
    ("name", "flag", "content", "needles"),
    [
        ("crowdhuman", "--pred", '[{"image_id": "a", "bbox": [1, 2, "x", 4], "score": 0.5}]', ("bbox",)),
        ("coco-keypoints", "--pred", '[{"image_id": 785, "category_id": 1, "keypoints": "x", "score": 1}]', ()),
        ("coco-box", "--pred", '[{"image_id": 785, "category_id": 1, "bbox": [1, "y", 3, 4], "score": 1}]', ()),
        ("crowdpose", "--pred", '[{"image_id": 103319, "category_id": 1, "keypoints": [1], "score": "s"}]', ()),
        ("mot", None, "1,1,10,ten,20,40,1,1,1\n", ("gt.txt:1",)),
    ],
)
def test_non_numeric_field(name, flag, content, needles, samples, tmp_path, capsys, monkeypatch):
    argv = _commands(samples)[name]
    if flag is None:
        bad = samples["mot_gt"] / "SEQ-01" / "gt" / "gt.txt"
    else:
        bad = tmp_path / "in" / "bad.json"
        argv = _swap(argv, flag, bad)
    bad.write_text(content)
    _bad(argv, tmp_path, capsys, monkeypatch, str(bad), *needles)


def test_inspect_bad_inputs(samples, tmp_path, capsys, monkeypatch):
    deep = tmp_path / "in" / "deep.json"
    deep.write_text(DEEP)
    _bad(["data", "inspect", str(deep)], tmp_path, capsys, monkeypatch, str(deep), "nested deeper")
    gt = samples["mot_gt"] / "SEQ-01" / "gt" / "gt.txt"
    gt.write_text("1,1,10,10,20,40,1,1,1\n1000000000000,1,12,10,20,40,1,1,1\n")
    _bad(["data", "inspect", str(samples["mot_gt"])], tmp_path, capsys, monkeypatch, f"{gt}:2:", "frame")
    gt.write_text("1,1,10,ten,20,40,1,1,1\n")
    _bad(["data", "inspect", str(gt)], tmp_path, capsys, monkeypatch, f"{gt}:1")
    good = tmp_path / "in" / "good.json"
    good.write_text('{"images": [], "annotations": []}')
    _deny(monkeypatch, good)
    _bad(["data", "inspect", str(good)], tmp_path, capsys, monkeypatch, str(good), "permission denied")


@pytest.mark.parametrize("case", ["deep", "denied"])
def test_data_check_unreadable_annotation(case, tmp_path, capsys, monkeypatch):
    """``data check`` reports every dataset (exit 1 when something is missing); an unreadable annotation file is one
    line naming it, never a traceback."""
    gt = tmp_path / "root" / "crowdhuman" / "annotation_train.odgt"
    gt.parent.mkdir(parents=True)
    gt.write_text(DEEP + "\n" if case == "deep" else '{"ID": "a", "gtboxes": []}\n')
    if case == "denied":
        _deny(monkeypatch, gt)
    monkeypatch.delenv("CROWDBENCH_DEBUG", raising=False)
    before = files_under(tmp_path)
    assert main(["data", "check", "--data-root", str(tmp_path / "root"), "--table", "hie-pose/table3"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in out.splitlines() if line.startswith("unreadable: ")]
    assert len(lines) == 1 and str(gt) in lines[0], out
    assert ("nested deeper" if case == "deep" else "permission denied") in lines[0]
    assert files_under(tmp_path) == before


def test_debug_still_raises(tmp_path, monkeypatch):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    monkeypatch.setenv("CROWDBENCH_DEBUG", "1")
    with pytest.raises(Exception, match="nested deeper"):
        main(["data", "inspect", str(deep)])


@needs_data
@pytest.mark.parametrize(
    "folder", ["coco_keypoints", "crowdpose", "ochuman", "posetrack17", "posetrack18", "mot17", "crowdhuman"]
)
def test_inspect_sample_folders(folder, capsys):
    assert main(["data", "inspect", str(DATA / folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "folder" and report["datasets"]
    assert all(Path(p).is_relative_to(DATA / folder) for p in report["inspected"])
    assert not any("det" in Path(p).name or "pred" in Path(p).name for p in report["inspected"])  # GT only
    json.dumps(report, allow_nan=False)


@needs_data
def test_inspect_folder_without_dataset(tmp_path, capsys, monkeypatch):
    err = _bad(["data", "inspect", str(DATA / "mot15")], tmp_path, capsys, monkeypatch, "no dataset file found")
    assert "seqinfo.ini" in err and ".odgt" in err


@needs_data
def test_crowdhuman_empty_detections_is_strict_json(samples, capsys):
    # no detections at all: the image's record with an empty 'dtboxes' (an empty file is an error, issue 20)
    pred = samples["odgt"].parent / "no_dets.json"
    pred.write_text('{"ID": "283554,35288000868e92d4", "dtboxes": []}\n')
    assert main([*_swap(_commands(samples)["crowdhuman"], "--pred", pred), "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert out["mMR"] is None and out["undefined"]["mMR"] == "no detections"
    json.dumps(out, allow_nan=False)


@needs_data
@pytest.mark.parametrize("name", ["coco-keypoints", "coco-box", "crowdpose", "hie-wap", "posetrack", "mot"])
def test_eval_json_is_strict(name, samples, capsys):
    assert main([*_commands(samples)[name], "--json"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


def test_strict_json_helper():
    out = strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": float("-inf")}}, {"a": "no GT"})
    assert out == {
        "a": None,
        "b": [1.0, None],
        "c": {"d": None},
        "undefined": {"a": "no GT", "b[1]": "infinite (inf)", "c.d": "infinite (-inf)"},
    }
    json.dumps(out, allow_nan=False)


@needs_data
def test_broken_pipe_is_quiet():
    """stdout closed early (``crowdbench ... | head``): no traceback, no 'Exception ignored'."""
    cmd = [sys.executable, "-m", "crowdbench", "data", "inspect", str(DATA / "coco_keypoints"), "--json"]
    for reader in ("head -1", "head -n 0"):
        proc = subprocess.run(
            f"{' '.join(cmd)} | {reader}", shell=True, capture_output=True, text=True, executable="/bin/bash"
        )
        assert proc.returncode == 0
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
        assert proc.stderr == ""


@pytest.mark.parametrize(
    ("ann", "needle"),
    [
        ({"keypoints": [1, 2, "x"]}, "'keypoints'[2] must be a number"),
        ({"image_id": [1]}, "'image_id' must be an integer"),
        ({"bbox": [1, "y", 3, 4]}, "'bbox'[1] must be a number"),
        ({"iscrowd": [1]}, "'iscrowd' must be 0 or 1"),
    ],
)
def test_inspect_coco_non_numeric_field(ann, needle, tmp_path, capsys, monkeypatch):
    path = tmp_path / "in" / "gt.json"
    path.parent.mkdir()
    ann = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "keypoints": [1, 2, 2], **ann}
    data = {"images": [{"id": 1}], "annotations": [ann], "categories": [{"id": 1, "keypoints": ["nose"]}]}
    path.write_text(json.dumps(data))
    _bad(["data", "inspect", str(path)], tmp_path, capsys, monkeypatch, f"{path}: annotations[0] (id 7)", needle)
