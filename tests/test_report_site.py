"""The report site (issue 10): built from a small store, opened in headless Chromium (skipped without a browser):
every table page loads without console messages, the numbers in the DOM equal the store's, nothing is fetched from
the network; exports; tolerance colours only for full numbers; the whole site for every table under 30 s."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest

from crowdbench.bench.matrix import config_hash, expand
from crowdbench.bench.specs import available_tables, load_spec
from crowdbench.bench.store import Record, ResultStore
from crowdbench.reports.aggregate import CellView
from crowdbench.reports.exports import latex, markdown_block, update_markdown_file
from crowdbench.reports.site import build_site, delta_class, row_changes, table_view

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
TABLES = ["hie-pose/table3", "pose-regression/table4", "occlusion-aug/table4"]


def fill(store: ResultStore, table_id: str, seeds: tuple[int, ...] = (0,), level: str = "smoke") -> list[Record]:
    """One record per runnable row and seed with made-up but distinct metric values."""
    spec = load_spec(table_id)
    out = []
    for cell in expand(spec, seeds=list(seeds)):
        metrics = {
            m.key: round(0.1 + 0.01 * cell.row_index + 0.003 * cell.seed + 0.001 * j, 6)
            for j, m in enumerate(spec.metrics)
        }
        rec = Record(
            table_id=spec.id,
            row_index=cell.row_index,
            row_label=cell.row_label,
            seed=cell.seed,
            profile="smoke",
            level=level,
            config_hash=config_hash(cell.config),
            config=cell.config.model_dump(mode="json"),
            stage_keys={"evaluate": f"k{cell.row_index}"},
            stages_run=["evaluate"],
            metrics=metrics,
            provenance={"commit": "abc123", "device": "cpu (test)", "command": f"crowdbench table {spec.id}"},
            curves={"pr": [{"recall": r / 10, "precision": 1 - r / 20} for r in range(11)],
                    "mr_fppi": [{"fppi": 10 ** (e / 4), "miss": 0.9 - 0.05 * (e + 8)} for e in range(-8, 4)]},
        )  # fmt: skip
        store.put(rec)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    store = ResultStore(f"sqlite:///{root / 'results.sqlite'}")
    records = {t: fill(store, t, seeds=(0, 1) if t == "hie-pose/table3" else (0,)) for t in TABLES}
    index = build_site(store, root / "report", tables=TABLES)
    return root / "report", index, records, store


class _Cells(HTMLParser):
    """``data-row`` / ``data-metric`` / ``data-mean`` of every reproduced cell of the results table."""

    def __init__(self) -> None:
        super().__init__()
        self.row: str | None = None
        self.cells: dict[tuple[int, str], float] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-row" in a:
            self.row = a["data-row"]
        if tag == "td" and a.get("data-metric") and a.get("data-mean") and self.row is not None:
            self.cells[(int(self.row), str(a["data-metric"]))] = float(a["data-mean"] or "nan")


def expected_cells(table_id: str, records: list[Record]) -> dict[tuple[int, str], float]:
    spec = load_spec(table_id)
    by_row: dict[int, list[Record]] = {}
    for r in records:
        by_row.setdefault(r.row_index, []).append(r)
    out = {}
    for row, recs in by_row.items():
        for m in spec.metrics:
            values = [r.metrics[m.key] * m.scale for r in recs]
            out[(row, m.key)] = round(sum(values) / len(values), m.decimals)
    return out


def test_pages_exports_and_numbers_without_a_browser(site):
    out, index, records, _ = site
    html = index.read_text()
    for t in TABLES:
        paper, num = t.split("/")
        page = out / "tables" / paper / f"{num}.html"
        text = page.read_text()
        parser = _Cells()
        parser.feed(text)
        assert parser.cells == pytest.approx(expected_cells(t, records[t]))
        assert f'href="tables/{paper}/{num}.html"' in html
        for ext in ("md", "csv", "tex"):
            assert (page.with_suffix(f".{ext}")).stat().st_size > 100
        assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing from the network
    assert "Times[s]</th>" not in html
    t4 = (out / "tables" / "pose-regression" / "table4.html").read_text()
    assert "smoke, on cpu (test)" in t4  # the timing column names its device
    assert "Detection curves" in (out / "tables" / "hie-pose" / "table3.html").read_text()
    assert "± " in (out / "tables" / "hie-pose" / "table3.html").read_text()  # two seeds: mean ± std
    assert "pending" in (out / "tables" / "pose-regression" / "table4.html").read_text()  # literature rows


def test_latex_and_markdown_exports(site):
    *_, store = site
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    tex = latex(view)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"AP (\%)" in tex and r"$\pm$" in tex and "Smoke" in tex
    block = markdown_block(view)
    assert block.startswith("<!-- crowdbench:begin hie-pose/table3 -->") and "crowdbench:end hie-pose/table3" in block


def test_update_markdown_between_markers(site, tmp_path):
    _, _, _, store = site
    view, _ = table_view(store, load_spec("hie-pose/table3"), "smoke", "cmd")
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- crowdbench:begin hie-pose/table3 -->\nold\n<!-- crowdbench:end hie-pose/table3 -->\nend\n"
    )
    assert update_markdown_file(readme, view)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text and "SMOKE" in text
    other = tmp_path / "other.md"
    other.write_text("no markers\n")
    assert not update_markdown_file(other, view)


def test_delta_colours_only_full_numbers():
    m = load_spec("hie-pose/table3").metrics[0]
    assert delta_class(CellView(paper=50.0, mean=50.5), m, "full") == "ok"
    assert delta_class(CellView(paper=50.0, mean=52.0), m, "full") == "near"
    assert delta_class(CellView(paper=50.0, mean=60.0), m, "full") == "far"
    assert delta_class(CellView(paper=50.0, mean=50.5), m, "smoke") == "smoke"
    assert delta_class(CellView(paper=None, mean=50.5), m, "full") == "none"


def test_what_changed_between_rows():
    changes = row_changes(load_spec("pose-regression/table1"))
    assert changes[0] == "parts: pose_regression.resnet50"
    assert changes[1] == "+ pose_regression.feature_align"
    t2 = row_changes(load_spec("pose-regression/table2"))
    assert (
        "pose_regression.centerness (use_at_test=False) instead of pose_regression.centerness (use_at_test=True)"
        in t2[2]
    )


def test_whole_site_for_every_table_under_30_seconds(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.sqlite'}")
    for t in available_tables():
        if load_spec(t).runnable_rows:
            fill(store, t)
    start = time.perf_counter()
    index = build_site(store, tmp_path / "report")
    seconds = time.perf_counter() - start
    assert seconds < 30, f"report took {seconds:.1f} s"
    assert len(list((tmp_path / "report" / "tables").glob("*/*.html"))) == len(available_tables())
    assert index.read_text().count("reproduced in smoke") == sum(
        bool(load_spec(t).runnable_rows) for t in available_tables()
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's chromium)")
def test_pages_in_headless_chromium(site, tmp_path):
    out, index, records, _ = site
    pages = [index] + [out / "tables" / t.split("/")[0] / f"{t.split('/')[1]}.html" for t in TABLES]
    for page in pages:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
        proc = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
        assert not console, f"{page}: {console}"
        assert "</html>" in proc.stdout
        if page != index:
            parser = _Cells()
            parser.feed(proc.stdout)
            table_id = "/".join(page.with_suffix("").parts[-2:])
            assert parser.cells == pytest.approx(expected_cells(table_id, records[table_id]))
        shot = tmp_path / f"{page.stem}-{page.parent.name}.png"
        subprocess.run([*cmd, "--window-size=1300,1600", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                       timeout=120, check=True)  # fmt: skip
        assert shot.stat().st_size > 10_000


def test_report_shows_every_level_in_the_store_and_lists_deviations(tmp_path):
    """No --profile: smoke and full records both appear (full on its own page); a full-modified row names its
    deviations in every output and its delta is never coloured as a verdict."""
    from crowdbench.bench.cli import main
    from crowdbench.reports.render import csv_text, markdown, terminal_table

    store = ResultStore(f"sqlite:///{tmp_path / 'results.sqlite'}")
    fill(store, "hie-pose/table3")
    spec = load_spec("hie-pose/table3")
    deviation = {"key": "train.iterations", "recipe": 78750, "run": 20, "text": "train.iterations: 78750 → 20"}
    for cell in expand(spec, profile="full", rows=[0, 1]):
        store.put(
            Record(
                table_id=spec.id, row_index=cell.row_index, row_label=cell.row_label, seed=0, profile="full",
                level="full-modified" if cell.row_index == 0 else "full", config_hash=config_hash(cell.config),
                config=cell.config.model_dump(mode="json"), stage_keys={}, stages_run=[],
                metrics={"AP": 0.8130, "mMR": 0.56, "JI": 0.7},
                provenance={"device": "cuda (test)", "deviations": [deviation] if cell.row_index == 0 else []},
            )
        )  # fmt: skip
    assert main(["report", "--run-dir", str(tmp_path), "--out", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'data-table="hie-pose/table3" data-profile="smoke"' in index
    assert 'data-table="hie-pose/table3" data-profile="full"' in index
    page = (tmp_path / "site" / "tables" / "hie-pose" / "table3-full.html").read_text()
    assert "full-modified" in page and "train.iterations: 78750 → 20" in page
    view, _ = table_view(store, spec, "full", "cmd")
    row0, row1 = view.rows[0], view.rows[1]
    m = spec.metrics[0]
    assert delta_class(row0.cells["AP"], m, ",".join(row0.levels)) == "smoke"  # 81.30 vs 81.36: not a verdict
    assert delta_class(row1.cells["AP"], m, ",".join(row1.levels)) == "ok"  # the paper's recipe: a verdict
    for text in (markdown(view), csv_text(view)):
        assert "train.iterations: 78750 → 20" in text
    assert r"train.iterations: 78750 $\to$ 20" in latex(view)
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(terminal_table(view))
    assert "train.iterations: 78750 → 20" in console.export_text()
