"""Table exports for papers and READMEs: LaTeX (booktabs) and Markdown between markers.

Both carry the reproduction level in the reproduced columns' header, so a smoke number pasted into a paper draft or a
README still says what it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from crowdbench.reports.aggregate import (
    EFFECT_HEADER,
    TableView,
    effect_rows,
    format_cell,
    format_delta,
    format_value,
    verdict_summary,
)
from crowdbench.reports.render import markdown, ours_header, show_delta

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
    """Booktabs tables: per metric paper | reproduced [95 % CI] (level) | Δ (full only), one row per table row
    (pending rows say so); then the effects with their paired intervals and verdicts."""
    spec = view.spec
    metrics = spec.metrics
    k = 3 if show_delta(view) else 2
    cols = "l" + (" " + "r" * k) * len(metrics)
    head1 = ["Row"] + [rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(m.label)}}}" for m in metrics]
    rules = " ".join(rf"\cmidrule(lr){{{2 + k * i}-{1 + k * (i + 1)}}}" for i in range(len(metrics)))
    sub = ["Paper", "{ours}", r"$\Delta$"][:k]
    head2 = [""] + [
        latex_escape(ours_header(view, m).capitalize()) if x == "{ours}" else x for m in metrics for x in sub
    ]
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
            cells = [rf"\multicolumn{{{k * len(metrics)}}}{{l}}{{\emph{{pending: {latex_escape(row.pending or '')}}}}}"]
        else:
            cells = []
            for m in metrics:
                c = row.cells[m.key]
                texts = [format_value(c.paper, m.decimals), format_cell(c, m.decimals), format_delta(c, m.decimals)]
                cells += [latex_escape(t) for t in texts[:k]]
        lines.append(" & ".join([latex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    modified = [r for r in view.rows if r.deviations]
    if modified:  # full-modified rows: what differs from the paper's recipe (not a reproduction of it)
        notes = "; ".join(f"{r.label}: {', '.join(r.deviations)}" for r in modified)
        lines.append(rf"\par\footnotesize{{{latex_escape(f'Full-modified rows (recipe → run): {notes}')}}}")
    effects = effect_rows(view)
    if effects:
        lines += [
            r"\par\medskip",
            rf"\footnotesize{{{latex_escape(f'Effects (row − its compare_to row): {verdict_summary(view)}.')}}}\par",
            r"\begin{tabular}{llllrl}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in EFFECT_HEADER) + r" \\",
            r"\midrule",
            *(" & ".join(latex_escape(c) for c in line) + r" \\" for line in effects),
            r"\bottomrule",
            r"\end{tabular}",
        ]
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
