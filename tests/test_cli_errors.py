"""Bad input through the top-level CLI: one `error:` line naming the file/line/option, non-zero exit."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from crowdbench.bench import specs
from crowdbench.bench.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_malformed_odgt_line_names_file_and_line(tmp_path, capsys):
    gt = tmp_path / "annotation_val.odgt"
    gt.write_text('{"ID": "a", "gtboxes": []}\n{"ID": "b", "gtboxes": [\n')
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    assert main(["eval", "crowdhuman", "--gt", str(gt), "--pred", str(pred)]) == 2
    assert "annotation_val.odgt:2:" in _one_error_line(capsys)


def test_unknown_plugin_in_a_spec_lists_known_plugins(tmp_path, monkeypatch, capsys):
    root = tmp_path / "papers"
    shutil.copytree(specs.specs_root(), root)
    path = root / "hie-pose" / "table3.yaml"
    data = yaml.safe_load(path.read_text())
    data["rows"][1]["plugins"] = ["crowddet.emd"]
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(specs, "specs_root", lambda: root)
    specs.load_spec.cache_clear()
    try:
        assert main(["table", "hie-pose/table3", "--run-dir", str(tmp_path / "run")]) == 2
    finally:
        specs.load_spec.cache_clear()
    err = _one_error_line(capsys)
    assert "unknown plugin 'crowddet.emd'" in err and "crowddet.emd_loss" in err and "crowddet.set_nms" in err


def test_unknown_table_lists_tables(capsys):
    assert main(["table", "hie-pose/table99"]) == 2
    err = _one_error_line(capsys)
    assert "unknown table 'hie-pose/table99'" in err and "hie-pose/table3" in err


def test_bad_override_names_the_option(tmp_path, capsys):
    assert main(["table", "hie-pose/table3", "--run-dir", str(tmp_path), "--set", "train.iters=3"]) == 2
    assert "train has no 'iters'" in _one_error_line(capsys)


def test_full_profile_without_data_root_says_so(tmp_path, capsys):
    assert main(["table", "hie-pose/table3", "--profile", "full", "--run-dir", str(tmp_path), "--rows", "1"]) == 2
    assert "--data-root is required" in _one_error_line(capsys)
    missing = ["--data-root", str(tmp_path / "nowhere")]
    assert main(["table", "hie-pose/table3", "--profile", "full", "--run-dir", str(tmp_path), *missing]) == 2
    assert "nowhere: --data-root is not a folder" in _one_error_line(capsys)
    empty = ["--data-root", str(tmp_path)]
    assert main(["table", "hie-pose/table3", "--profile", "full", "--run-dir", str(tmp_path / "r"), *empty]) == 2
    assert f"{tmp_path}/hie/train: HIE2020 train annotation folder not found; put it there" in _one_error_line(capsys)


@pytest.mark.parametrize("args", [["list", "tables"], ["list", "plugins"]])
def test_python_dash_m_entry_point(args):
    proc = subprocess.run([sys.executable, "-m", "crowdbench", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert ("hie-pose/table3" if args[1] == "tables" else "crowddet.set_nms") in proc.stdout
