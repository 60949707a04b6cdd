"""The paper's recipe of every full table (results/recipes, spec recipe blocks) and the levels it decides: ``full``
only without deviations, ``full-modified`` with each deviation listed, ``smoke`` on synthetic data."""

from __future__ import annotations

import pytest

from crowdbench.bench.cli import main
from crowdbench.bench.config import RunConfig, set_dotted
from crowdbench.bench.matrix import expand
from crowdbench.bench.profiles import base_config
from crowdbench.bench.recipes import NOT_RECIPE, flatten, get_dotted, imagenet_file, load_recipe
from crowdbench.bench.specs import available_tables, load_spec

TASKS = ("detection", "pose", "pose_regression", "tracking", "pose_tracking")
# The config slices each task family runs (its recipe must list every setting in them).
SLICES = {
    "detection": ("data.source", "model.", "train.", "infer.", "postprocess.", "evaluate.metric"),
    "pose": ("data.source", "pose.", "evaluate.metric"),
    "pose_regression": ("data.source", "regression.", "evaluate.metric"),
    "tracking": ("data.source", "tracking.", "evaluate.metric"),
    "pose_tracking": ("data.source", "pose.", "tracking.", "pose_tracking.", "evaluate."),
}
# Not recipe settings by design: a row's technique (a plugin sets them) or an input that replaces a trained stage
# (any value is a deviation, since the recipe's default is to train it).
BY_DESIGN = (
    "model.kd_teacher",
    "postprocess.fusion",
    "postprocess.fusion_iou",
    "postprocess.fusion_skip",
    "pose.test.detections",
    "tracking.reid.weights",
)
FULL_TABLES = [t for t in available_tables() if load_spec(t).runnable_rows]


def _ignored(key: str) -> bool:
    return any(key == n or (n.endswith(".") and key.startswith(n)) for n in (*NOT_RECIPE, *BY_DESIGN))


@pytest.mark.parametrize("task", TASKS)
def test_every_full_setting_of_a_task_family_is_in_its_recipe_with_a_source(task):
    recipe = load_recipe(task)
    listed = set(recipe.settings) | set(recipe.init)
    leaves = flatten(base_config("full", task).model_dump(mode="json"))
    unlisted = [
        k
        for k in leaves
        if k.startswith(SLICES[task]) and not _ignored(k) and k not in listed
        and not any(k.startswith(f"{s}.") for s in listed)  # dict-valued settings (detector_set)
    ]  # fmt: skip
    assert not unlisted, f"results/recipes/{task}.yaml lacks {unlisted}: add them with their source"
    assert all(s.source.strip() for s in recipe.settings.values())
    assert all(i.source.strip() and i.weights.strip() for i in recipe.init.values())


@pytest.mark.parametrize("task", TASKS)
def test_the_full_profile_is_its_recipe(task):
    cfg = base_config("full", task)
    for key, setting in load_recipe(task).settings.items():
        probe = RunConfig(task=task)  # type: ignore[arg-type]
        set_dotted(probe, key, setting.value)  # the value validated as the config would hold it
        assert get_dotted(cfg, key) == get_dotted(probe, key), key


@pytest.mark.parametrize("table", FULL_TABLES)
def test_every_tables_resolved_full_config_is_its_recipe(table, tmp_path):
    """No drift: with the ImageNet weights in the data root and no --set, every row of every table resolves to its
    recipe (no deviation), and each table recipe setting holds unless the row itself changes it."""
    spec = load_spec(table)
    cells = expand(spec, profile="full", overrides={"data.root": str(tmp_path)})
    weights = tmp_path / "weights"
    weights.mkdir()
    for cell in cells:
        for key in load_recipe(spec.task).init:
            (weights / imagenet_file(cell.config, key)).write_bytes(b"weights")
    for cell in expand(spec, profile="full", overrides={"data.root": str(tmp_path)}):
        assert cell.level == "full", (cell.name, [str(d) for d in cell.deviations])
        row = spec.rows[cell.row_index]
        touched = set(row.overrides)
        for key, setting in spec.recipe.items():
            if key not in touched and not row.plugins:
                probe = base_config("full", spec.task)
                set_dotted(probe, key, setting.value)
                assert get_dotted(cell.config, key) == get_dotted(probe, key), (cell.name, key)


def test_overrides_make_a_row_full_modified_and_are_listed():
    spec = load_spec("occlusion-aug/table3")
    over = {"data.root": "/data", "pose.train.epoch_scale": 0.001, "pose.train.batch_size": 2}
    for cell in expand(spec, profile="full", overrides=over):
        texts = [str(d) for d in cell.deviations]
        assert cell.level == "full-modified"
        assert "pose.train.epoch_scale: 1.0 → 0.001" in texts
        assert "pose.train.batch_size: 128 → 2" in texts
        assert any(t.startswith("initialisation (pose.model.weights): ImageNet → none") for t in texts)


def test_a_swapped_data_source_is_a_deviation():
    spec = load_spec("hie-pose/table3")
    cell = expand(spec, profile="full", overrides={"data.source": "crowdhuman"}, rows=[0])[0]
    assert "data.source: hie → crowdhuman" in [str(d) for d in cell.deviations]


def test_smoke_cells_are_smoke_with_no_deviations():
    for cell in expand(load_spec("hie-pose/table3"), overrides={"train.iterations": 2}):
        assert cell.level == "smoke" and cell.deviations == []


def test_occlusion_aug_table3_trains_on_crowdpose_train_and_oa_rows_use_s3():
    spec = load_spec("occlusion-aug/table3")
    base, oa = expand(spec, profile="full")
    assert base.config.data.train_split == "train" and base.config.data.val_split == "test"
    assert oa.config.pose.train.schedule == "s3" and oa.config.pose.train.occlusion != "none"


def test_dry_run_prints_the_recipe_and_deviations_and_runs_nothing(tmp_path, capsys):
    run_dir = tmp_path / "runs"
    code = main(["table", "occlusion-aug/table3", "--profile", "full", "--data-root", str(tmp_path / "d"),
                 "--set", "pose.train.batch_size=2", "--run-dir", str(run_dir), "--dry-run"])  # fmt: skip
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "pose.train.lr" in text and "paper 001" in text  # the recipe with its sources
    assert "level full-modified; deviations: pose.train.batch_size: 128 → 2" in text
    assert not run_dir.exists()  # nothing ran, nothing was written
