"""One self-contained HTML page for a parameter search (bench/search.py): history or Pareto front, parameter
importances, best trial vs the paper's setting (trial 0) vs the paper's numbers, their t-intervals over the objective
seeds / folds (when the study has them), the sampler's settings, and every trial."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from jinja2 import Environment, select_autoescape
from optuna.importance import PedAnovaImportanceEvaluator

from crowdbench.bench.errors import one_line
from crowdbench.bench.search import (
    SearchResult,
    SeedInterval,
    TrialRecord,
    open_storage,
    paired_interval,
    seed_interval,
)
from crowdbench.datasets.formats.atomic import atomic_write_text
from crowdbench.reports.figures import png_base64, pyplot

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }} · crowdbench search</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .3rem .55rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f5f5f5; }
tr.fail td { color: #a33; } tr.best td { font-weight: 600; } td.paper { color: #666; }
.note { padding: .5rem .8rem; background: #f4f4f4; border: 1px solid #ddd; border-radius: 4px; }
code { background: #f3f3f3; padding: 0 .25rem; }
img { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p>Study <code>{{ r.study_name }}</code>, storage <code>{{ r.storage }}</code>, sampler
<code>{{ r.sampler or '?' }}</code>{% if settings %} ({{ settings }}){% endif %}.
{{ n_trials }} trials: {{ n_complete }} complete, {{ n_fail }} failed{% if n_other %}, {{ n_other }} other{% endif %}
{% if r.target %} (target {{ r.target }} complete){% endif %}.
Objectives: {% for name, d in r.objectives %}<code>{{ name }}</code> ({{ d }})
{%- if not loop.last %}, {% endif %}{% endfor %}{% if r.objective_seeds > 1 %}, each the mean over
{{ r.seeds_label or (r.objective_seeds ~ ' objective seeds') }}{% endif %}.</p>
{% for line in sampler_changes %}<p class="note">{{ line }}</p>
{% endfor %}
<h2>{{ 'Pareto front' if multi else 'Optimisation history' }}</h2>
{% if history %}<p><img alt="{{ 'pareto front' if multi else 'optimisation history' }}"
 src="data:image/png;base64,{{ history }}"></p>
{% else %}<p class="note">No complete trial yet.</p>{% endif %}
<h2>Parameter importances</h2>
{% if importance %}<p><img alt="parameter importances" src="data:image/png;base64,{{ importance }}"></p>{% endif %}
{% if importance_note %}<p class="note">{{ importance_note }}</p>{% endif %}
<h2>{{ 'Pareto front vs the paper' if multi else 'Best trial vs the paper' }}</h2>
<table>
<thead><tr><th>setting</th>{% for m in metrics %}<th>{{ m }}</th>{% endfor %}
{% for p in params %}<th>{{ p }}</th>{% endfor %}</tr></thead>
<tbody>
{% for label, cls, rec in compare %}<tr class="{{ cls }}"><td>{{ label }}</td>
{% for m in metrics %}<td>{{ fmt(rec.metrics.get(m)) if rec else '' }}</td>{% endfor %}
{% for p in params %}<td>{{ fmt(rec.params.get(p)) if rec else '' }}</td>{% endfor %}</tr>
{% endfor %}
{% if paper %}<tr><td>paper (reported)</td>
{% for m in metrics %}<td class="paper">{{ fmt(paper.get(m)) }}</td>{% endfor %}
{% for p in params %}<td class="paper">{{ fmt(r.first_trial.params.get(p)) if r.first_trial else '' }}</td>{% endfor %}
</tr>{% endif %}
</tbody>
</table>
<p>Trial 0 is the paper's parameter setting replayed here{% if paper %}; the paper row is transcribed from the paper,
never measured here{% endif %}.</p>
{% if noise %}<h2>Across the {{ r.seeds_label or (r.objective_seeds ~ ' objective seeds') }}</h2>
<table>
<thead><tr><th>setting</th><th>metric</th><th>mean</th><th>std</th><th>95 % t-interval</th><th>per fold</th>
</tr></thead>
<tbody>
{% for label, m, iv, values in noise %}<tr><td>{{ label }}</td><td>{{ m }}</td>
<td>{{ fmt(iv.mean) if iv else '' }}</td><td>{{ fmt(iv.std) if iv else '' }}</td>
<td>{{ ('[' ~ fmt(iv.low) ~ ', ' ~ fmt(iv.high) ~ ']') if iv else '' }}</td>
<td>{{ values | map('fmt') | join(', ') if values else '' }}</td></tr>
{% endfor %}
</tbody>
</table>
<p>Student-t interval of the mean over the folds: mean ± t<sub>0.975, N−1</sub> · std / √N (N = {{ r.objective_seeds }}
folds; the search maximised / minimised the mean). The difference rows are paired: best − trial 0 fold by fold. An
interval that contains 0 means the search's gain is within the folds' noise.</p>{% endif %}
<h2>All trials</h2>
<table>
<thead><tr><th>#</th><th>state</th><th>seconds</th>
{% for m in metrics %}<th>{{ m }}</th>{% endfor %}
{% for p in params %}<th>{{ p }}</th>{% endfor %}<th>error</th></tr></thead>
<tbody>
{% for t in r.trials %}<tr class="{{ 'fail' if t.state == 'FAIL' else ('best' if t.number in best_numbers else '') }}">
<td>{{ t.number }}</td><td>{{ t.state }}</td><td>{{ fmt(t.seconds) }}</td>
{% for m in metrics %}<td>{{ fmt(t.metrics.get(m)) }}</td>{% endfor %}
{% for p in params %}<td>{{ fmt(t.params.get(p)) }}</td>{% endfor %}<td>{{ t.error or '' }}</td></tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"""


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items() if k not in ("name", "from_trial"))


def noise_rows(r: SearchResult) -> list[tuple[str, str, SeedInterval | None, list[float]]]:
    """(setting, metric, t-interval, per-fold values) of each best trial, trial 0 and their paired difference, for
    every objective; empty without objective seeds."""
    if r.objective_seeds < 2:
        return []
    rows: list[tuple[str, str, SeedInterval | None, list[float]]] = []
    first = r.first_trial if r.first_trial is not None and r.first_trial.state == "COMPLETE" else None
    for name, _ in r.objectives:
        for t in r.best:
            rows.append((f"best: trial {t.number}", name, seed_interval(t.folds.get(name, [])), t.folds.get(name, [])))
        if first is not None:
            values = first.folds.get(name, [])
            rows.append(("trial 0: paper setting", name, seed_interval(values), values))
            for t in r.best:
                if t.number != first.number:
                    a, b = t.folds.get(name, []), values
                    diff = [x - y for x, y in zip(a, b, strict=False)] if len(a) == len(b) else []
                    rows.append((f"trial {t.number} − trial 0", name, paired_interval(a, b), diff))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _png(fig: Any) -> str:
    fig.tight_layout()
    return png_base64(fig)


def _mark_paper_setting(ax: Any, r: SearchResult, xy: Callable[[TrialRecord], tuple[Any, Any]]) -> None:
    """Trial 0 (the paper setting) as a star at ``xy(trial)``, when it completed."""
    t = r.first_trial
    if t is not None and t.state == "COMPLETE":
        x, y = xy(t)
        ax.plot([x], [y], "*", ms=13, color="#f0a020", label="trial 0 (paper setting)")


def _titled_png(fig: Any, ax: Any, **labels: str) -> str:
    """The figure with its title and axis labels (``labels``) and a legend, as a base64 PNG."""
    ax.set(**labels)
    ax.legend(fontsize=8)
    return _png(fig)


def history_png(r: SearchResult) -> str | None:
    """Objective per complete trial and the running best (trial 0 starred); None without a complete trial."""
    done = r.complete
    if not done:
        return None
    plt = pyplot()
    name, direction = r.objectives[0]
    xs = [t.number for t in done]
    ys = [t.metrics.get(name, math.nan) for t in done]
    best, run = [], None
    for y in ys:
        run = y if run is None or (y > run if direction == "maximize" else y < run) else run
        best.append(run)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(xs, ys, "o", ms=4, color="#3b75af", label=name)
    ax.step(xs, best, where="post", color="#d62728", label=f"best so far ({direction})")
    _mark_paper_setting(ax, r, lambda t: (t.number, t.metrics.get(name)))
    return _titled_png(fig, ax, title=f"optimisation history: {r.study_name}", xlabel="trial", ylabel=name)


def pareto_png(r: SearchResult) -> str | None:
    """Scatter of the two objectives, the Pareto front highlighted; None without a complete trial."""
    done = r.complete
    if not done:
        return None
    plt = pyplot()
    (a, da), (b, db) = r.objectives[:2]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot([t.metrics.get(a) for t in done], [t.metrics.get(b) for t in done], "o", ms=4, color="#bbbbbb",
            label="trials")  # fmt: skip
    front = sorted(r.best, key=lambda t: t.metrics.get(a, 0))
    ax.plot([t.metrics.get(a) for t in front], [t.metrics.get(b) for t in front], "o-", ms=5, color="#d62728",
            label="Pareto front")  # fmt: skip
    _mark_paper_setting(ax, r, lambda t: (t.metrics.get(a), t.metrics.get(b)))
    return _titled_png(fig, ax, title=f"Pareto front: {r.study_name}", xlabel=f"{a} ({da})", ylabel=f"{b} ({db})")


def importances(study: optuna.Study | None, r: SearchResult) -> tuple[dict[str, float] | None, str | None]:
    """PED-ANOVA importances (Optuna's default; no scikit-learn) of the first objective, or (None, note) when they
    cannot be computed."""
    done = r.complete
    if study is None:
        return None, "Parameter importances need the study's storage, which could not be opened."
    if len(done) < 2:
        return None, f"Parameter importances need at least 2 complete trials ({len(done)} so far)."
    varied = [p for p in r.params or sorted(done[0].params) if len({repr(t.params.get(p)) for t in done}) > 1]
    if not varied:
        return None, "Every complete trial used the same parameter values: importances are undefined."
    single = sorted(set(r.params or done[0].params) - set(varied))
    note = f"Not varied in the complete trials (left out): {', '.join(single)}." if single else None
    sign = -1.0 if r.objectives[0][1] == "maximize" else 1.0  # PED-ANOVA looks at low targets
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns whenever a target is given
            imp = optuna.importance.get_param_importances(
                study, evaluator=PedAnovaImportanceEvaluator(), params=varied, target=lambda t: sign * t.values[0]
            )
    except Exception as exc:
        return None, f"Parameter importances could not be computed: {one_line(exc)}"
    if not imp or any(not math.isfinite(v) for v in imp.values()):
        return None, "Parameter importances are undefined: the objective did not vary over the complete trials."
    return imp, note


def importance_png(imp: dict[str, float], objective: str) -> str:
    plt = pyplot()
    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))
    ax.barh(names, [imp[n] for n in names], color="#3b75af")
    ax.set(title=f"parameter importance for {objective} (PED-ANOVA)", xlabel="importance")
    return _png(fig)


def _load(result_or_study: SearchResult | optuna.Study) -> tuple[SearchResult, optuna.Study | None]:
    if isinstance(result_or_study, optuna.Study):
        return SearchResult.from_study(result_or_study), result_or_study
    r = result_or_study
    try:
        study = optuna.load_study(study_name=r.study_name, storage=open_storage(r.storage))
    except Exception:
        study = None
    return r, study


def render_search_page(
    result_or_study: SearchResult | optuna.Study, out_dir: Path, *, title: str, paper: dict[str, float] | None = None
) -> Path:
    """Write ``out_dir/<study>.html`` (figures inlined as base64 PNG, no network) and return its path."""
    r, study = _load(result_or_study)
    multi = len(r.objectives) > 1
    imp, note = importances(study, r)
    objective_names = [n for n, _ in r.objectives]
    extra = sorted({m for t in r.trials for m in t.metrics} - set(objective_names))
    metrics = objective_names + extra
    params = r.params or sorted({p for t in r.trials for p in t.params})
    compare: list[tuple[str, str, TrialRecord | None]] = []
    for t in r.best:
        compare.append((f"{'Pareto' if multi else 'best'}: trial {t.number}", "best", t))
    compare.append(("trial 0: paper setting (reproduced)", "", r.first_trial))
    env = Environment(autoescape=select_autoescape(default_for_string=True))
    env.filters["fmt"] = _fmt
    changes = [
        f"Trials from #{h['from_trial']} on: {h.get('name', '?')} ({_settings_text(h) or 'settings not recorded'})."
        for h in r.sampler_history
    ]
    html = env.from_string(PAGE).render(
        r=r,
        title=title,
        multi=multi,
        n_trials=len(r.trials),
        n_complete=len(r.complete),
        n_fail=sum(t.state == "FAIL" for t in r.trials),
        n_other=sum(t.state not in ("FAIL", "COMPLETE") for t in r.trials),
        history=pareto_png(r) if multi else history_png(r),
        importance=importance_png(imp, objective_names[0]) if imp else None,
        importance_note=note,
        metrics=metrics,
        params=params,
        compare=compare if r.first_trial is not None else compare[:-1],
        paper=paper,
        best_numbers={t.number for t in r.best},
        fmt=_fmt,
        settings=_settings_text(r.sampler_settings),
        sampler_changes=["The sampler settings changed during this study.", *changes] if len(changes) > 1 else [],
        noise=noise_rows(r),
    )
    path = Path(out_dir) / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', r.study_name)}.html"
    atomic_write_text(path, html)
    return path
