"""Tables, plots and a markdown report over a sweep's results (``cosim report DIR``).

* status counts: jobs per status;
* aggregate: successful jobs grouped by grid point (grid parameters plus any text result
  columns), each numeric result reduced to mean, standard deviation and count over seeds
  (and over result rows when a job returns several);
* a PNG of one metric's mean ± std against one grid parameter, one line per combination of
  the other grid parameters;
* ``DIR/report.md`` with all of the above, the failures and the tool versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cosim.batch.results import META_COLUMNS, atomic_write, load_results
from cosim.batch.runner import STATUS_OK
from cosim.errors import CosimError

REPORT_MD = "report.md"
FIGURES = "report"
AGGREGATE_CSV = "aggregate.csv"
MAX_FAILURES_SHOWN = 50

#: Axis labels with units of the parameters and results of the built-in job kinds (a sweep's
#: other columns are labelled with their bare name).
AXIS_LABELS = {
    "r_wire": "wire segment resistance r_wire [Ω]",
    "r_source": "source resistance r_source [Ω]",
    "r_sense": "sense resistance r_sense [Ω]",
    "r_row": "row segment resistance r_row [Ω]",
    "r_col": "column segment resistance r_col [Ω]",
    "v_read": "read voltage v_read [V]",
    "g_min": "g_min [S]",
    "g_max": "g_max [S]",
    "size": "array size (rows = columns, count)",
    "rows": "rows (count)",
    "cols": "logical columns (count)",
    "block": "block size (count)",
    "bits": "weight bits (count, 0 = analog)",
    "dac_bits": "DAC bits (count, 0 = ideal)",
    "adc_bits": "ADC bits (count, 0 = ideal)",
    "n_inputs": "input vectors (count)",
    "length": "kernel length L (count)",
    "channels": "channels H (count)",
    "state_size": "state size N (count)",
    "tolerance": "write-verify tolerance (unitless)",
    "mdm": "Manhattan-distance mapping (0 = off, 1 = on)",
    "nf": "NF (unitless)",
    "nf_max": "largest column NF (unitless)",
    "output_error": "differential output error (unitless)",
    "diff_error": "differential output error (unitless)",
    "prog_error": "programming error, mean |relative| (unitless)",
    "prog_success": "programming success rate (unitless)",
    "kernel_rel_l2": "kernel relative L2 error (unitless)",
    "elapsed_s": "job time [s]",
}


def axis_label(name: str) -> str:
    """Axis label with unit for a sweep parameter or result column (bare name if unknown)."""
    return AXIS_LABELS.get(name, name)


@dataclass
class Report:
    """What ``build_report`` produced."""

    status: pd.DataFrame
    aggregate: pd.DataFrame
    """Full numeric aggregate: keys, then ``<metric>_mean/_std/_count``."""
    compact: pd.DataFrame
    """The same as text, ``mean ± std`` per metric (what the console and report.md show)."""
    failures: pd.DataFrame
    markdown_path: Path
    figure_path: Path | None
    metric: str | None
    x: str | None


def result_columns(frame: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
    """Columns holding job results (neither metadata nor parameters)."""
    params = set(manifest.get("grid_parameters", [])) | set(manifest.get("fixed_parameters", []))
    for job in manifest.get("jobs", []):
        params.update(job.get("params", {}))
    skip = set(META_COLUMNS) | params | {"row"}
    return [c for c in frame.columns if c not in skip]


def status_table(frame: pd.DataFrame, n_jobs: int) -> pd.DataFrame:
    """Jobs per status, plus jobs without any result yet (``missing``)."""
    per_job = frame.drop_duplicates("job_id")
    counts = per_job["status"].value_counts().rename_axis("status").reset_index(name="jobs")
    missing = n_jobs - len(per_job)
    if missing:
        counts = pd.concat([counts, pd.DataFrame({"status": ["missing"], "jobs": [missing]})])
    return counts.reset_index(drop=True)


def aggregate_table(
    frame: pd.DataFrame, grid: list[str], results: list[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Mean / std / count of each numeric result per grid point; (table, keys, metrics)."""
    ok = frame[frame["status"] == STATUS_OK]
    metrics = [c for c in results if pd.api.types.is_numeric_dtype(ok[c]) and c in ok]
    labels = [c for c in results if c not in metrics]
    keys = [*grid, *labels]
    if ok.empty or not metrics:
        return pd.DataFrame(columns=keys), keys, metrics
    grouped = ok.groupby(keys, dropna=False, sort=True) if keys else ok.groupby(lambda _: "all")
    table = grouped[metrics].agg(["mean", "std", "count"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    return table.reset_index(), keys, metrics


def compact_table(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """The aggregate with one ``mean ± std`` text column per metric and a count column ``n``."""
    if table.empty:
        return table
    out = table[keys].copy()
    for metric in metrics:
        mean, std = table[f"{metric}_mean"], table[f"{metric}_std"].fillna(0.0)
        out[metric] = [f"{m:.4g} ± {s:.2g}" for m, s in zip(mean, std)]
    out["n"] = table[f"{metrics[0]}_count"].astype(int)
    return out


def _mean_sd(mean: float, sd: float) -> str:
    """``mean ± sd`` with 3 significant digits for the mean and 2 for the sd."""
    if np.isnan(mean):
        return "–"
    return f"{mean:.3g}" if np.isnan(sd) or sd == 0 else f"{mean:.3g} ± {sd:.2g}"


def terminal_tables(
    aggregate: pd.DataFrame, width: int = 80, first: str | None = None
) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """The aggregate laid out for a terminal ``width`` columns wide.

    Metrics that are the same at every grid point (sd 0) become one note each instead of a
    column; the others are shown as ``mean ± sd`` (3 significant digits), packed into as many
    tables as needed so that no table is wider than ``width`` (each repeats the grid keys and
    the seed count ``n``; ``first`` is put first). Returns ([(title, table)], notes).
    """
    if aggregate.empty:
        return [], []
    metrics = [c[: -len("_mean")] for c in aggregate.columns if c.endswith("_mean")]
    stats = {f"{m}_{s}" for m in metrics for s in ("mean", "std", "count")}
    keys = [c for c in aggregate.columns if c not in stats]
    if first in metrics:
        metrics = [first] + [m for m in metrics if m != first]
    notes, columns = [], {}
    for m in metrics:
        mean, sd = aggregate[f"{m}_mean"], aggregate[f"{m}_std"].fillna(0.0)
        if mean.nunique(dropna=False) == 1 and (sd == 0).all():
            notes.append(f"{m} = {mean.iloc[0]:.4g} at every grid point")
        else:
            columns[m] = [_mean_sd(a, b) for a, b in zip(mean, sd)]
    base = aggregate[keys].astype(str).reset_index(drop=True)
    base["n"] = aggregate[f"{metrics[0]}_count"].astype(int).astype(str).to_numpy()

    def cost(name: str, cells: Sequence[str]) -> int:
        return max([len(name), *map(len, cells)]) + 3  # padding and border

    room = width - 1 - sum(cost(c, base[c]) for c in base.columns)
    chunks: list[list[str]] = [[]]
    used = 0
    for m, cells in columns.items():
        need = cost(m, cells)
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(m)
        used += need
    frames = []
    for chunk in (c for c in chunks if c):
        frame = base.copy()
        for m in chunk:
            frame.insert(len(frame.columns) - 1, m, columns[m])
        frames.append(frame)
    title = "results, mean ± sd over seeds"
    if len(frames) == 1:
        return [(title, frames[0])], notes
    return [(f"{title} ({k + 1}/{len(frames)})", f) for k, f in enumerate(frames)], notes


def _choose(value: str | None, options: list[str], what: str) -> str | None:
    if value is None:
        return options[0] if options else None
    if value not in options:
        raise CosimError(f"--{what} {value!r} is not one of: {', '.join(options) or 'none'}")
    return value


def metric_figure(table: pd.DataFrame, keys: list[str], metric: str, x: str) -> Any:
    """Figure of mean ± sd of ``metric`` against grid parameter ``x``; one line per
    combination of the other grid parameters (pyplot-free, Agg canvas)."""
    from matplotlib.figure import Figure

    others = [k for k in keys if k != x]
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    groups = list(table.groupby(others, dropna=False, sort=True)) if others else [((), table)]
    for name, group in groups:
        group = group.sort_values(x)
        name = name if isinstance(name, tuple) else (name,)
        label = ", ".join(f"{k} = {v}" for k, v in zip(others, name)) or metric
        std = group[f"{metric}_std"].fillna(0.0)
        ax.errorbar(group[x].astype(float), group[f"{metric}_mean"], yerr=std, marker="o",
                    capsize=3, label=label)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(f"{axis_label(metric)}\nmean ± sd over seeds")
    values = sorted(table[x].astype(float).unique())
    if len(values) <= 8:
        ax.set_xticks(values)
    ax.grid(True, alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize="small")
    return fig


def plot_metric(table: pd.DataFrame, keys: list[str], metric: str, x: str, path: Path) -> None:
    """Write :func:`metric_figure` as a PNG to ``path`` (atomically)."""
    fig = metric_figure(table, keys, metric, x)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.6g}"
    return "" if value is None or value is pd.NA else str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of ``frame`` (no index)."""
    if frame.empty:
        return "(none)\n"
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _markdown(
    manifest: dict[str, Any], rep: Report, figure_rel: str | None, n_failures: int
) -> str:
    tools = manifest.get("tools", {})
    parts = [
        f"# Sweep report: {manifest.get('name')}\n",
        f"- job kind: `{manifest.get('config', {}).get('kind')}`",
        f"- jobs: {manifest.get('n_jobs')}; seeds: {len(manifest.get('seeds', []))}; "
        f"grid: {', '.join(manifest.get('grid_parameters', [])) or '(none)'}",
        f"- sweep status: {manifest.get('status')}; runs: {len(manifest.get('runs', []))}",
        "- tools: " + ", ".join(f"{k} {v}" for k, v in tools.items() if v),
        "",
        "## Status\n",
        markdown_table(rep.status),
        "## Results per grid point (mean / std / count over seeds)\n",
        markdown_table(rep.compact),
        f"Full numbers: `{FIGURES}/{AGGREGATE_CSV}`.\n",
    ]
    if figure_rel:
        parts += [f"## {rep.metric} vs {rep.x}\n", f"![{rep.metric} vs {rep.x}]({figure_rel})\n"]
    parts += [f"## Failed jobs ({n_failures})\n", markdown_table(rep.failures)]
    return "\n".join(parts)


def build_report(root: str | Path, metric: str | None = None, x: str | None = None) -> Report:
    """Write ``DIR/report.md`` and the figure; return the tables (see the module docstring)."""
    root = Path(root)
    frame, manifest = load_results(root)
    grid = list(manifest.get("grid_parameters", []))
    results = result_columns(frame, manifest)
    status = status_table(frame, int(manifest.get("n_jobs", 0)))
    table, keys, metrics = aggregate_table(frame, grid, results)
    metric = _choose(metric, metrics, "metric")
    numeric_grid = [g for g in grid if g in table and pd.api.types.is_numeric_dtype(table[g])]
    varying = [g for g in numeric_grid if table[g].nunique() > 1] or numeric_grid
    x = _choose(x, varying, "x") if x is None else _choose(x, grid, "x")
    failed = frame[frame["status"] != STATUS_OK].drop_duplicates("job_id")
    failures = failed[["job_id", "status", "attempt", "error", *grid]]
    figure = None
    if metric and x and not table.empty:
        figure = root / FIGURES / f"{metric}_vs_{x}.png"
        plot_metric(table, keys, metric, x, figure)
    csv_path = root / FIGURES / AGGREGATE_CSV
    atomic_write(csv_path, lambda tmp: table.to_csv(tmp, index=False))
    compact = compact_table(table, keys, metrics)
    rep = Report(status, table, compact, failures, root / REPORT_MD, figure, metric, x)
    figure_rel = str(figure.relative_to(root)) if figure else None
    rep.failures = failures.head(MAX_FAILURES_SHOWN)
    text = _markdown(manifest, rep, figure_rel, len(failures))
    atomic_write(rep.markdown_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return rep
