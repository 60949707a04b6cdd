"""Table specs (``results/papers/<key>/table<N>.yaml``): they validate, cover exactly the tables of the papers
README, name only registered plugins where they are runnable, and their paper numbers match the paper text.

The transcription checks read the plain-text papers from ``shared/papers`` next to the repository, find each
table's block from its ``Table N`` caption, find each row's line in the block, and compare the printed cells
with the spec, column by column. They skip when the papers folder is absent.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from crowdbench.bench import registry
from crowdbench.bench.specs import SpecError, TableSpec, available_tables, load_spec, specs_root

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"

# The "tables to reproduce" column of shared/papers/README.md.
EXPECTED_TABLES = [
    *(f"hie-pose/table{n}" for n in range(1, 6)),
    *(f"occlusion-aug/table{n}" for n in range(1, 5)),
    *(f"pose-regression/table{n}" for n in range(1, 5)),
    *(f"offset-guided/table{n}" for n in range(1, 6)),
    *(f"hie-tracking/table{n}" for n in range(1, 8)),
]
PAPER_FILES = {
    "hie-pose": "000_ddb63d29ac90dafd.txt",
    "occlusion-aug": "001_cddd551554c567a9.txt",
    "pose-regression": "002_ce6e9ef320c78a94.txt",
    "offset-guided": "003_9f847b36dbdd0e4d.txt",
    "hie-tracking": "004_2ed4b343d242199f.txt",
}
RUNNABLE_TABLES = {
    "hie-pose/table1",
    "hie-pose/table2",
    "hie-pose/table3",
    "hie-pose/table5",
    "occlusion-aug/table1",
    "occlusion-aug/table3",
    "occlusion-aug/table4",
    "offset-guided/table1",
    "hie-tracking/table1",
    "hie-tracking/table2",
    "hie-tracking/table3",
    "hie-tracking/table4",
    "hie-tracking/table5",
    "hie-tracking/table6",
    "hie-tracking/table7",
    "offset-guided/table5",
    *(f"pose-regression/table{n}" for n in range(1, 5)),
}

# Tables whose body is printed above their caption (the block runs from the previous caption to this one).
BODY_ABOVE_CAPTION = {
    "hie-pose/table5",
    *(f"occlusion-aug/table{n}" for n in range(1, 5)),
    *(f"pose-regression/table{n}" for n in range(1, 5)),
}
# Metric columns the paper prints, in order, where that is not simply every metric of the spec.
PRINTED_COLUMNS = {"hie-pose/table3": ("AP", "mMR"), "hie-tracking/table3": ("AP", "mMR")}
# Rows whose line is not found from the label: (table, label) -> the fragment the line starts with.
FRAGMENTS: dict[tuple[str, str], str] = {
    ("hie-pose/table5", "HRNet"): "\t✓\t\t\t\t\t",
    ("hie-pose/table5", "HRNet + multi-scale evaluation"): "\t✓\t\t✓\t\t\t",
    ("hie-pose/table5", "HRNet + extra data"): "\t✓\t\t\t\t✓\t",
    ("hie-pose/table5", "HRNet + SimpleNet + multi-scale evaluation + extra data"): "\t✓\t✓\t✓\t\t✓\t",
    (
        "hie-pose/table5",
        "HRNet + SimpleNet + multi-scale evaluation + multi-scale input + extra data",
    ): "\t✓\t✓\t✓\t✓\t✓\t",
    (
        "hie-pose/table5",
        "HRNet + SimpleNet + multi-scale evaluation + multi-scale input + extra data + optical flow smoothing",
    ): "\t✓\t✓\t✓\t✓\t✓\t✓",
    ("pose-regression/table2", "Ours (+ centerness; using centerness)"): "Ours\t✓\t\t✓\t",
    ("pose-regression/table2", "Ours (+ centerness, + PSM; using centerness)"): "Ours\t✓\t✓\t✓\t",
    ("pose-regression/table2", "Ours (+ centerness, + PSM; using PSM)"): "Ours\t✓\t✓\t\t✓",
    ("pose-regression/table2", "Ours (+ PSM; using PSM)"): "Ours\t\t✓\t\t✓",
    ("occlusion-aug/table2", "+OA (HRNet-W48plus, 384 × 288)"): "+OA\tHRNet-W48plus\t384 × 288\t77.5(+0.7)",
    ("occlusion-aug/table2", "+OA (HRNet-W48plus, 384 × 288, extra data)"): "+OA\tHRNet-W48plus\t384 × 288\t78.7(+0.5)",
    ("hie-tracking/table5", "+ Own ReID & Det"): "+ Own RelD & Det",  # OCR reads ReID as RelD
}
# Rows printed that many non-blank lines below the line their label starts.
LINES_BELOW = {
    ("hie-tracking/table4", "Performance on training set"): 2,
    ("hie-tracking/table4", "Performance on testing set"): 2,
}
# Checked by their own tests below: per-video (transposed), garbled, and configuration-only tables.
# Rows the paper describes in its text but does not print in the table (checked separately).
TEXT_ROWS = {("hie-pose/table3", "+ KD regularization"), ("hie-tracking/table5", "+ Box flow smoothing")}
SPECIAL_TABLES = {"hie-pose/table4", "hie-tracking/table6", "occlusion-aug/table4"}
# Tables whose settings are printed tab-separated columns named like the settings keys.
SETTINGS_TABLES = [
    "hie-pose/table5",
    *(f"occlusion-aug/table{n}" for n in range(1, 5)),
    "pose-regression/table2",
    "offset-guided/table1",
    "offset-guided/table4",
    "offset-guided/table5",
]

CAPTION = re.compile(r"^\s*Table (\d+)[:.]")
DELTA = re.compile(r"\([+-]\d+(?:\.\d+)?\)")  # the gain printed next to a value, e.g. "75.3(+0.7)"
TOKEN = re.compile(r"(?<![\w.\-])(?:\d+(?:\.\d+)?|-)(?![\w.\-])")  # a number cell, or "-" for an empty one
OCR_CELL_START = re.compile(r"[ |‘\\]+[\d-]")  # space-separated OCR rows: separators, then the first number


# ---------------------------------------------------------------------------------------------- helpers
@cache
def paper_lines(paper_file: str) -> tuple[str, ...]:
    path = PAPERS / paper_file
    if not path.is_file():
        pytest.skip(f"paper texts not found at {PAPERS} (the shared folder next to the repository)")
    return tuple(path.read_text().splitlines())


def table_block(spec: TableSpec) -> list[str]:
    """The lines of the table: after its caption up to the next one, or (body above) from the previous one."""
    lines = paper_lines(spec.paper_file)
    captions = [(i, int(m[1])) for i, line in enumerate(lines) if (m := CAPTION.match(line))]
    mine = [i for i, num in captions if num == spec.table]
    assert len(mine) == 1, f"{spec.id}: expected one 'Table {spec.table}' caption, found lines {mine}"
    at = mine[0]
    if spec.id in BODY_ABOVE_CAPTION:
        start = max((i for i, _ in captions if i < at), default=-1) + 1
        return list(lines[start:at])
    end = min((i for i, _ in captions if i > at), default=len(lines))
    return list(lines[at + 1 : end])


def _starts_row(line: str, fragment: str) -> bool:
    """``line`` starts with ``fragment`` and the next thing is a new cell (not more label text)."""
    if not line.startswith(fragment):
        return False
    rest = line[len(fragment) :]
    return rest == "" or rest.startswith("\t") or OCR_CELL_START.match(rest) is not None


def row_line(spec: TableSpec, label: str, block: list[str]) -> str:
    """The one line of ``block`` that holds row ``label``."""
    fragment, skip = FRAGMENTS.get((spec.id, label), label), LINES_BELOW.get((spec.id, label), 0)
    candidates = [fragment]
    if (spec.id, label) not in FRAGMENTS and (m := re.fullmatch(r"(.+) \(([^()]*)\)", label)):
        # A label made unique as "<printed label> (<cell>, <cell>)" stands for the tab-separated cells.
        candidates.append("\t".join([m[1], *m[2].split(", ")]))
    for frag in candidates:
        hits = [i for i, line in enumerate(block) if _starts_row(line, frag)]
        if len(hits) > 1:
            pytest.fail(f"{spec.id}: row {label!r}: {len(hits)} lines start with {frag!r}")
        if hits:
            at = hits[0]
            while skip:
                at += 1
                skip -= bool(block[at].strip())
            return block[at]
    pytest.fail(f"{spec.id}: no line for row {label!r} (tried {candidates!r}) in the Table {spec.table} block")


def printed_tokens(line: str) -> list[str]:
    return TOKEN.findall(DELTA.sub(" ", line))


def cell_matches(value: object, cell: str) -> bool:
    cell = cell.strip()
    if value is True:
        return cell == "✓"
    if value is False:
        return cell in ("", "✗")
    if value is None:
        return cell == "-"
    return str(value) == cell


# ---------------------------------------------------------------------------------------------- 1. the set
def test_every_spec_validates_and_the_set_is_the_readme_tables():
    assert sorted(available_tables()) == sorted(EXPECTED_TABLES)
    for table_id in EXPECTED_TABLES:
        spec = load_spec(table_id)
        assert spec.id == table_id
        assert spec.paper_file == PAPER_FILES[spec.paper]
        assert spec.rows, table_id
        for row in spec.rows:
            assert set(row.paper) <= {m.key for m in spec.metrics}


def test_runnable_tables():
    runnable = {t for t in EXPECTED_TABLES if load_spec(t).runnable_rows}
    assert runnable == RUNNABLE_TABLES
    assert len(load_spec("hie-pose/table3").runnable_rows) == len(load_spec("hie-pose/table3").rows)
    # every extra-data row runs (smoke: synthetic stand-ins; full: CityPersons / self-collected fail with one line)
    assert len(load_spec("hie-pose/table2").runnable_rows) == len(load_spec("hie-pose/table2").rows)
    assert [i for i, _ in load_spec("hie-pose/table5").runnable_rows] == [0, 1]  # extra data / SimpleNet: pending
    assert [i for i, _ in load_spec("offset-guided/table5").runnable_rows] == [4, 5]  # validation, two stages
    tables = ("occlusion-aug/table4", "offset-guided/table1", "hie-tracking/table4", "hie-tracking/table5")
    for table_id in (*tables, "hie-tracking/table7", "hie-pose/table1"):
        assert len(load_spec(table_id).runnable_rows) == len(load_spec(table_id).rows)
    assert [i for i, _ in load_spec("occlusion-aug/table3").runnable_rows] == [1, 2]  # row 0: another method
    assert [i for i, _ in load_spec("occlusion-aug/table1").runnable_rows] == [0, 1, 4, 5, 6, 7, 8, 9]  # no RSN, W48+
    assert [i for i, _ in load_spec("pose-regression/table4").runnable_rows] == [7, 8, 9]  # others: literature


def test_every_spec_names_a_known_dataset_and_its_splits():
    from crowdbench.datasets.layout import LAYOUTS

    for table_id in EXPECTED_TABLES:
        data = load_spec(table_id).data
        layout = LAYOUTS[data["source"]]
        for key in ("train_split", "val_split"):
            assert data.get(key, "val" if key == "val_split" else "train") in layout.splits, (table_id, key)


def test_hie_pose_table3_is_the_crowddet_ablation():
    spec = load_spec("hie-pose/table3")
    assert spec.task == "detection"
    assert spec.smoke_dataset == "synthetic/small"
    assert [(m.key, m.label, m.higher_is_better) for m in spec.metrics] == [
        ("AP", "AP (%)", True),
        ("mMR", "mMR (%)", False),
        ("JI", "JI (%)", True),
    ]
    assert [(r.label, r.plugins) for r in spec.rows] == [
        ("ResNet50 + Faster RCNN + extra data", []),
        ("+ emd loss", ["crowddet.emd_loss"]),
        ("+ refine module", ["crowddet.emd_loss", "crowddet.refine_module"]),
        ("+ set NMS", ["crowddet.emd_loss", "crowddet.refine_module", "crowddet.set_nms"]),
        (
            "+ KD regularization",
            ["crowddet.emd_loss", "crowddet.refine_module", "crowddet.set_nms", "kd_regularization"],
        ),
    ]
    assert all(r.paper["JI"] is None for r in spec.rows)
    kd = spec.rows[-1]  # a sentence of section 2.3, not a printed row: no paper values
    assert all(v is None for v in kd.paper.values())
    sentence = kd.source.split('"')[1].replace("''", "'")
    assert sentence in " ".join(paper_lines(spec.paper_file))


# ---------------------------------------------------------------------------------------------- 2. plugins
def test_runnable_rows_name_registered_plugins():
    known = set(registry.plugin_names())
    for table_id in EXPECTED_TABLES:
        for _, row in load_spec(table_id).runnable_rows:
            for ref in row.plugins:
                name, options = registry.parse_plugin_ref(ref)
                assert name in known, f"{table_id}: row {row.label!r} names unregistered plugin {name!r}"
                registry.get_plugin(name, options)  # raises PluginError on a bad option


def test_pending_rows_say_what_is_missing():
    for table_id in EXPECTED_TABLES:
        for row in load_spec(table_id).rows:
            assert row.pending is None or row.pending.strip(), f"{table_id}: row {row.label!r}"


# ---------------------------------------------------------------------------------------------- 3. numbers
def test_no_default_effect_involves_another_methods_published_result():
    for table_id in EXPECTED_TABLES:
        spec = load_spec(table_id)
        for i, row in enumerate(spec.rows):
            j = spec.compared_row(i)
            if j is not None and row.compare_to == "above":
                assert not row.published_only and not spec.rows[j].published_only, (table_id, i + 1)
    t5 = load_spec("offset-guided/table5")  # MSRA (test) is not an ablation of "two stages with optical flow"
    assert [t5.compared_row(i) for i in range(len(t5.rows))] == [None, None, None, None, 3, 4, None, None, None,
                                                                 None, 9, 10]  # fmt: skip


@pytest.mark.parametrize("table_id", [t for t in EXPECTED_TABLES if t not in SPECIAL_TABLES])
def test_paper_values_match_the_paper_text(table_id):
    spec = load_spec(table_id)
    block = table_block(spec)
    columns = PRINTED_COLUMNS.get(table_id, tuple(m.key for m in spec.metrics))
    problems = []
    for row in spec.rows:
        if (table_id, row.label) in TEXT_ROWS:
            continue
        tokens = printed_tokens(row_line(spec, row.label, block))
        if len(tokens) < len(columns):
            problems.append(f"{row.label!r}: line has {tokens}, expected {len(columns)} value cells")
            continue
        for column, token in zip(columns, tokens[-len(columns) :], strict=True):
            value = row.paper[column]
            printed = None if token == "-" else float(token)
            if value != printed:
                problems.append(f"{row.label!r} {column}: spec {value!r}, paper prints {token!r}")
    assert not problems, f"{table_id}:\n" + "\n".join(problems)


@pytest.mark.parametrize("table_id", SETTINGS_TABLES)
def test_settings_match_the_printed_columns(table_id):
    spec = load_spec(table_id)
    block = table_block(spec)
    problems = []
    for row in spec.rows:
        header = next((line.split("\t") for line in block if set(row.settings) <= set(line.split("\t"))), None)
        assert header is not None, f"{table_id}: no header line with columns {sorted(row.settings)}"
        cells = row_line(spec, row.label, block).split("\t")
        for key, value in row.settings.items():
            cell = cells[header.index(key)]
            if not cell_matches(value, cell):
                problems.append(f"{row.label!r} {key}: spec {value!r}, paper prints {cell!r}")
    assert not problems, f"{table_id}:\n" + "\n".join(problems)


def test_hie_pose_table4_per_video_columns():
    spec = load_spec("hie-pose/table4")
    block = table_block(spec)
    header = next(line for line in block if line.startswith("Video Name\t")).split("\t")
    problems, nulls = [], []
    for metric in spec.metrics:
        video_line = [line for line in block if line.startswith(metric.label + "\t")]
        assert len(video_line) == 1, metric.label
        cells = video_line[0].split("\t")
        for row in spec.rows:
            cell = cells[header.index(row.label)].strip()
            value = row.paper[metric.key]
            if value is None:
                nulls.append((row.label, metric.key))
            if value != (float(cell) if cell else None):
                problems.append(f"{row.label!r} {metric.key}: spec {value!r}, paper prints {cell!r}")
    assert not problems, "\n".join(problems)
    # The two first-place cells the README warns about are empty in the text; nothing else is missing.
    assert sorted(nulls) == [("First Place", "hm_in_restaurant"), ("First Place", "hm_in_shopping_mall3")]


def test_hie_tracking_table6_garbled_cells_are_null():
    spec = load_spec("hie-tracking/table6")
    (row,) = spec.rows
    assert all(v is None for v in row.paper.values())
    # The text lost the decimal points; the cells are not usable numbers (w-AP cannot be 5634 %).
    assert printed_tokens(row_line(spec, row.label, table_block(spec))) == ["5634", "6960", "5302"]


def test_hie_tracking_table4_grid_parameters():
    spec = load_spec("hie-tracking/table4")
    block = table_block(spec)
    at = next(i for i, line in enumerate(block) if line.startswith("max-cos-dis"))
    header = [c.strip() for c in block[at].split("|")]
    grid = [float(t) for t in printed_tokens(block[at + 1])]
    for row in spec.rows:
        assert list(row.settings) == header
        assert list(row.settings.values()) == grid


def test_occlusion_aug_table4_has_no_numbers_in_the_text():
    spec = load_spec("occlusion-aug/table4")
    assert [r.label for r in spec.rows] == ["E1", "E2", "E3", "E4", "E5"]
    assert all(v is None for r in spec.rows for v in r.paper.values())


# ---------------------------------------------------------------------------------------------- 4. errors
def test_unknown_table_lists_the_known_ones():
    with pytest.raises(SpecError, match="known tables") as info:
        load_spec("nope/table9")
    assert "hie-pose/table3" in str(info.value)
    assert "nope/table9" in str(info.value)


def test_every_runnable_table_states_its_smoke_budget():
    """Issue 22 item 3: each runnable table's seed count under smoke is chosen once, with the measured minutes."""
    for table_id in RUNNABLE_TABLES:
        spec = load_spec(table_id)
        assert re.search(r"\d min", spec.smoke_budget) and "PLACEHOLDER" not in spec.smoke_budget, table_id
        assert spec.default_seeds("smoke") == list(range(spec.smoke_seeds))
        assert spec.default_seeds("full") == [0]
    assert load_spec("hie-tracking/table5").smoke_seeds == 3  # 3 seeds fit 20 minutes; ReID trains its own model
    assert load_spec("hie-pose/table3").smoke_seeds == 1  # 3 seeds take ~31 min: over the nox table3 limit


def test_more_than_one_smoke_seed_needs_its_budget_stated():
    data = yaml.safe_load((specs_root() / "hie-tracking" / "table5.yaml").read_text())
    data.pop("smoke_budget")
    data.pop("smoke_settings", None)  # settings need a budget too (checked first otherwise)
    with pytest.raises(ValueError, match="smoke_seeds 3 needs smoke_budget"):
        TableSpec.model_validate(data)
    data["smoke_seeds"] = 1
    assert TableSpec.model_validate(data).default_seeds("smoke") == [0]


def test_smoke_runs_rows_not_measurable_in_smoke_only_on_request():
    """Issue 22 item 3: a default smoke run leaves out the rows whose effects are never counted under smoke (ImageNet-
    scale backbones, the costliest stand-ins); `full` and explicit --rows run every runnable row."""
    og = load_spec("offset-guided/table1")
    assert og.default_rows("smoke") == list(range(10)) and og.rows_on_request("smoke") == [10, 11]  # k, l
    assert og.default_rows("full") is None and og.rows_on_request("full") == []
    # hie-pose Table 1: rows 3, 6 and 7 change only the framework (FPN, Cascade) against a row of their backbone, so
    # they and their bases 2 and 5 run; row 4 (SENet-154 vs ResNet-50) is a backbone row
    assert load_spec("hie-pose/table1").default_rows("smoke") == [0, 1, 2, 4, 5, 6]
    assert load_spec("hie-pose/table3").default_rows("smoke") is None  # nothing unmeasurable: every row
    for table_id in RUNNABLE_TABLES:
        spec = load_spec(table_id)
        chosen = spec.default_rows("smoke")
        for index in spec.rows_on_request("smoke"):
            assert spec.rows[index].smoke_unmeasurable, (table_id, index)
        for index in chosen if chosen is not None else []:  # a kept row is measurable or a measurable row's base
            row = spec.rows[index]
            based = any(spec.compared_row(i) == index for i in chosen if not spec.rows[i].smoke_unmeasurable)
            assert row.smoke_unmeasurable is None or based, (table_id, index)


def test_an_unmeasurable_row_runs_when_a_measurable_row_is_compared_with_it():
    data = yaml.safe_load((specs_root() / "offset-guided" / "table1.yaml").read_text())
    data["rows"][9]["smoke_unmeasurable"] = "a stand-in that cannot show this row's effect at CPU scale"  # row j
    data["rows"][10].pop("smoke_unmeasurable")  # row k, compared with the row above (j), is now measurable
    spec = TableSpec.model_validate(data)
    assert spec.default_rows("smoke") == list(range(11)) and spec.rows_on_request("smoke") == [11]


def test_smoke_settings_are_checked_and_need_their_budget():
    data = yaml.safe_load((specs_root() / "offset-guided" / "table1.yaml").read_text())
    assert TableSpec.model_validate(data).smoke_settings == {
        "pose.train.samples_per_epoch": 256,
        "pose.train.eval_every": 0,
    }
    with pytest.raises(ValueError, match=r"smoke_settings pose\.train\.samples_per_epok: unknown option"):
        TableSpec.model_validate({**data, "smoke_settings": {"pose.train.samples_per_epok": 512}})
    with pytest.raises(ValueError, match="smoke_settings needs smoke_budget"):
        TableSpec.model_validate({**data, "smoke_budget": ""})


def test_smoke_settings_apply_to_every_row_under_smoke_only():
    from crowdbench.bench.matrix import expand

    spec = load_spec("offset-guided/table1")
    assert {c.config.pose.train.samples_per_epoch for c in expand(spec, profile="smoke")} == {256}
    assert {c.config.pose.train.samples_per_epoch for c in expand(spec, profile="full")} == {None}
    other = expand(load_spec("occlusion-aug/table1"), profile="smoke")
    assert {c.config.pose.train.samples_per_epoch for c in other} == {1024}  # the smoke profile's


def test_a_row_override_that_a_plugin_replaces_is_a_spec_error():
    """Row overrides are set before the row's plugins: a plugin setting the same key silently replaced the spec's
    value (offset-guided Table 5 row 6 asked for a propagation threshold of 0.15 and ran 0.3). Now it names the
    plugin; the plugin's option gives the value."""
    from crowdbench.bench.matrix import expand
    from crowdbench.bench.specs import SpecError

    data = yaml.safe_load((specs_root() / "offset-guided" / "table5.yaml").read_text())
    row = data["rows"][5]
    assert {"pose_tracking.optical_flow": {"kp_thr": 0.15}} in row["plugins"]
    assert expand(TableSpec.model_validate(data), rows=[5])[0].config.pose_tracking.propagation_kp_thr == 0.15
    row["plugins"][-1] = "pose_tracking.optical_flow"
    row["overrides"]["pose_tracking.propagation_kp_thr"] = 0.15
    with pytest.raises(
        SpecError,
        match=r"row 'Ours \(two stages with optical flow\) \(validation\)': overrides "
        r"pose_tracking\.propagation_kp_thr=0\.15, but plugin 'pose_tracking\.optical_flow' sets it",
    ):
        expand(TableSpec.model_validate(data), rows=[5])
