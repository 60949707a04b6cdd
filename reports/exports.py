"""Table exports for papers and READMEs: LaTeX (booktabs) and Markdown between markers.

Both carry the reproduction level in the reproduced columns' header, so a smoke number pasted into a paper draft or a
README still says what it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from crowdbench.reports.aggregate import TableView, format_cell, format_delta, format_value
from crowdbench.reports.render import markdown, ours_header

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (``±`` and ``Δ`` become math)."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    out = out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--").replace("−", "-")
    return out.replace("→", r"$\to$")


def latex(view: TableView) -> str:
    """A booktabs table: per metric paper | reproduced (level) | Δ, one row per table row; pending rows say so."""
    spec = view.spec
    metrics = spec.metrics
    cols = "l" + " rrr" * len(metrics)
    head1 = ["Row"] + [rf"\multicolumn{{3}}{{c}}{{{latex_escape(m.label)}}}" for m in metrics]
    rules = " ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(len(metrics)))
    head2 = [""] + [x for m in metrics for x in ("Paper", latex_escape(ours_header(view, m).capitalize()), r"$\Delta$")]
    lines = [
        f"% crowdbench {spec.id} ({view.level}); regenerate with `crowdbench report --tables {spec.id}`",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(f'{spec.id}: {spec.title} Reproduction level: {view.level}.')}}}",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(head1) + r" \\",
        rules,
        " & ".join(head2) + r" \\",
        r"\midrule",
    ]
    for row in view.rows:
        if row.status == "pending":
            cells = [rf"\multicolumn{{{3 * len(metrics)}}}{{l}}{{\emph{{pending: {latex_escape(row.pending or '')}}}}}"]
        else:
            cells = []
            for m in metrics:
                c = row.cells[m.key]
                texts = (format_value(c.paper, m.decimals), format_cell(c, m.decimals), format_delta(c, m.decimals))
                cells += [latex_escape(t) for t in texts]
        lines.append(" & ".join([latex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    modified = [r for r in view.rows if r.deviations]
    if modified:  # full-modified rows: what differs from the paper's recipe (not a reproduction of it)
        notes = "; ".join(f"{r.label}: {', '.join(r.deviations)}" for r in modified)
        lines.append(rf"\par\footnotesize{{{latex_escape(f'Full-modified rows (recipe → run): {notes}')}}}")
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


BEGIN = "<!-- crowdbench:begin {table} -->"
END = "<!-- crowdbench:end {table} -->"


def markdown_block(view: TableView) -> str:
    """The Markdown table between ``<!-- crowdbench:begin T -->`` / ``<!-- crowdbench:end T -->`` markers."""
    tid = view.spec.id
    return f"{BEGIN.format(table=tid)}\n{markdown(view).rstrip()}\n{END.format(table=tid)}\n"


def update_markdown_file(path: Path, view: TableView) -> bool:
    """Replace the block of ``view``'s table between its markers in ``path`` (e.g. a README); False if no markers."""
    text = Path(path).read_text()
    tid = re.escape(view.spec.id)
    pattern = re.compile(rf"<!-- crowdbench:begin {tid} -->.*?<!-- crowdbench:end {tid} -->\n?", re.S)
    if not pattern.search(text):
        return False
    Path(path).write_text(pattern.sub(lambda _m: markdown_block(view), text, count=1))
    return True
