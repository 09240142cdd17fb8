"""The report: one self-contained HTML page (images inline) from the summary tables'
rows, never the customer-level ones.

Pure: rows in, HTML out (`render`); `revseg.io.report_tables` reads the rows. Matplotlib
draws the images (Agg backend, PNG): it is the plotting library a Spark cluster most
likely has already (Databricks runtimes ship it), it needs no browser or JavaScript to
render, and its PNGs make a page that opens anywhere, offline, as one file. Every number
the page prints also stands in a `data-value` attribute, exactly as the table holds it.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Row = Mapping[str, Any]


@dataclass(frozen=True)
class ReportData:
    """The rows a report draws: the summary tables of one grain (summed over groups where
    tiers are cut within groups) and, where a CLV run wrote them, its latest models."""

    grain: str
    segments: tuple[str, ...]  # the configured tiers, highest first
    boundaries: tuple[Row, ...]
    summaries: tuple[Row, ...]
    migrations: tuple[Row, ...]
    concentration: tuple[Row, ...]
    clv_models: tuple[Row, ...] = ()
    clv_validation: tuple[Row, ...] = ()
    groups: tuple[str, ...] = ()
    title: str = "revseg report"
    notes: tuple[str, ...] = field(default=())

    def periods(self) -> list[str]:
        return sorted({row["period"] for row in self.boundaries})


def render(data: ReportData) -> str:
    """The whole page."""
    import matplotlib

    matplotlib.use("Agg")
    sections = [
        _tiers_section(data),
        _concentration_section(data),
        _migrations_section(data),
        _boundaries_section(data),
        _clv_section(data),
    ]
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in data.notes)
    body = "\n".join(s for s in sections if s)
    return PAGE.format(title=html.escape(data.title), notes=notes, body=body)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
  color: #1d1d1f; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2.2rem; }}
img {{ max-width: 100%; height: auto; display: block; margin: 0.6rem 0; }}
table {{ border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.7rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.note {{ color: #555; font-size: 0.9rem; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.row > div {{ flex: 1 1 480px; }}
</style></head>
<body>
<h1>{title}</h1>
{notes}
{body}
</body></html>
"""


def _figure_tag(figure: Any, alt: str, name: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img id='{name}' alt='{html.escape(alt)}' src='data:image/png;base64,{encoded}'>"


def _number(value: Any, shown: str, name: str) -> str:
    """A table cell: the formatted number, the exact value in `data-value`."""
    exact = "" if value is None else str(value)
    return f"<td data-name='{name}' data-value='{html.escape(exact)}'>{html.escape(shown)}</td>"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _ordered(segments: Sequence[str], found: Sequence[str]) -> list[str]:
    """The configured tiers first, highest first, then any other segment found."""
    extra = sorted(set(found) - set(segments))
    return [s for s in segments if s in set(found)] + extra


def _tiers_section(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    periods = data.periods()
    if not periods:
        return "<h2>Tiers</h2><p>No periods of this grain are stored yet.</p>"
    revenue: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    customers: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in data.boundaries:
        revenue[row["segment"]][row["period"]] += row["revenue"]
        customers[row["segment"]][row["period"]] += int(row["customers"])
    order = _ordered(data.segments, list(revenue))
    totals = {p: sum(revenue[s][p] for s in order) for p in periods}
    fig, ax = plt.subplots(figsize=(10, 3.6))
    bottom = [0.0] * len(periods)
    for segment in order:
        shares = [float(revenue[segment][p] / totals[p]) if totals[p] else 0.0 for p in periods]
        ax.bar(periods, shares, bottom=bottom, label=segment)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_ylabel("share of revenue")
    ax.set_title(f"Revenue share per tier, by {data.grain}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _thin_ticks(ax, periods)
    share_img = _figure_tag(fig, "revenue share per tier over time", "revenue-share")
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for segment in order:
        ax.plot(periods, [customers[segment][p] for p in periods], marker="o", label=segment)
    ax.set_ylabel("customers")
    ax.set_title(f"Tier sizes, by {data.grain}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _thin_ticks(ax, periods)
    size_img = _figure_tag(fig, "tier sizes over time", "tier-sizes")
    return f"<h2>Tiers over time</h2>{share_img}{size_img}"


def _thin_ticks(ax: Any, labels: Sequence[str], most: int = 18) -> None:
    step = max(1, len(labels) // most)
    ax.set_xticks(range(0, len(labels), step))
    ax.set_xticklabels(labels[::step], rotation=45, ha="right", fontsize=8)


def _concentration_section(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    if not data.concentration:
        return ""
    rows = sorted(data.concentration, key=lambda r: r["period"])
    latest = rows[-1]["period"]
    by_group: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        by_group[tuple(row[g] for g in data.groups)].append(row)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="equality")
    cells = []
    for group, found in sorted(by_group.items()):
        name = " / ".join(map(str, group)) or "all"
        last = [r for r in found if r["period"] == latest]
        if last:
            points = last[0]["lorenz"]
            left.plot(
                [p["customer_share"] for p in points],
                [p["revenue_share"] for p in points],
                label=f"{name}: Gini {last[0]['gini']:.3f}",
            )
            cells.append(_concentration_row(name, last[0]))
        right.plot([r["period"] for r in found], [r["gini"] for r in found], marker="o", label=name)
    left.set_title(f"Lorenz curve, {latest}")
    left.set_xlabel("share of customers (lowest revenue first)")
    left.set_ylabel("share of revenue")
    left.legend(fontsize=8)
    right.set_title("Gini over time")
    labels = [r["period"] for r in rows if not data.groups] or sorted({r["period"] for r in rows})
    _thin_ticks(right, labels, 12)
    image = _figure_tag(fig, "Lorenz curve and Gini over time", "concentration")
    header = (
        "<tr><th>group</th><th>customers</th><th>revenue</th><th>Gini</th>"
        "<th>top 1%</th><th>top 10%</th><th>top 20%</th></tr>"
    )
    table = f"<table id='concentration-table'>{header}{''.join(cells)}</table>"
    return f"<h2>Concentration</h2>{image}<p>Latest period, {html.escape(latest)}:</p>{table}"


def _concentration_row(name: str, row: Row) -> str:
    return (
        f"<tr><td>{html.escape(name)}</td>"
        + _number(row["customers"], f"{row['customers']:,}", "customers")
        + _number(row["revenue"], _money(row["revenue"]), "revenue")
        + _number(row["gini"], f"{row['gini']:.4f}", "gini")
        + _number(row["top_1pct_share"], _share(row["top_1pct_share"]), "top_1pct_share")
        + _number(row["top_10pct_share"], _share(row["top_10pct_share"]), "top_10pct_share")
        + _number(row["top_20pct_share"], _share(row["top_20pct_share"]), "top_20pct_share")
        + "</tr>"
    )


def _migrations_section(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    if not data.migrations:
        return ""
    to_period = max(row["to_period"] for row in data.migrations)
    pair = [row for row in data.migrations if row["to_period"] == to_period]
    from_period = pair[0]["from_period"]
    sources = _ordered(data.segments, [r["from_segment"] for r in pair])
    targets = _ordered(data.segments, [r["to_segment"] for r in pair])
    counts = [[0] * len(targets) for _ in sources]
    moved = [[Decimal(0)] * len(targets) for _ in sources]
    for row in pair:
        i, j = sources.index(row["from_segment"]), targets.index(row["to_segment"])
        counts[i][j] += int(row["customers"])
        moved[i][j] += row["to_revenue"] - row["from_revenue"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    grids: tuple[tuple[str, list[list[float]], str], ...] = (
        ("customers", [[float(v) for v in line] for line in counts], "{:,.0f}"),
        ("revenue change (to - from)", [[float(v) for v in line] for line in moved], "{:,.0f}"),
    )
    for ax, (title, values, shown) in zip(axes, grids, strict=True):
        if title == "customers":
            ax.imshow(values, cmap="Blues", aspect="auto")
        else:  # centred on no change: red lost, blue gained
            bound = max((abs(v) for line in values for v in line), default=0.0) or 1.0
            ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(sources)), sources, fontsize=8)
        ax.set_xlabel(f"segment in {to_period}")
        ax.set_ylabel(f"segment in {from_period}")
        ax.set_title(title)
        for i, line in enumerate(values):
            for j, value in enumerate(line):
                if value:
                    ax.text(j, i, shown.format(value), ha="center", va="center", fontsize=7)
    image = _figure_tag(fig, f"tier migrations {from_period} to {to_period}", "migrations")
    rows = "".join(
        f"<tr><td>{html.escape(r['from_segment'])} → {html.escape(r['to_segment'])}</td>"
        + _number(r["customers"], f"{int(r['customers']):,}", "customers")
        + _number(r["from_revenue"], _money(r["from_revenue"]), "from_revenue")
        + _number(r["to_revenue"], _money(r["to_revenue"]), "to_revenue")
        + "</tr>"
        for r in sorted(pair, key=lambda r: (-int(r["customers"]), r["from_segment"]))
    )
    table = (
        "<table id='migrations-table'><tr><th>move</th><th>customers</th>"
        f"<th>revenue in {html.escape(from_period)}</th>"
        f"<th>revenue in {html.escape(to_period)}</th></tr>{rows}</table>"
    )
    title = f"<h2>Tier migrations, {html.escape(from_period)} → {html.escape(to_period)}</h2>"
    return f"{title}{image}{table}"


def _boundaries_section(data: ReportData) -> str:
    periods = data.periods()
    if not periods:
        return ""
    latest = periods[-1]
    rows = [r for r in data.boundaries if r["period"] == latest]
    rank = {name: i for i, name in enumerate(data.segments)}
    rows.sort(key=lambda r: ([str(r[g]) for g in data.groups], rank.get(r["segment"], 99)))
    groups = "".join(f"<th>{html.escape(g)}</th>" for g in data.groups)
    cells = "".join(
        "<tr>"
        + f"<td>{html.escape(r['segment'])}</td>"
        + "".join(f"<td>{html.escape(str(r[g]))}</td>" for g in data.groups)
        + _number(r["customers"], f"{int(r['customers']):,}", "customers")
        + _number(r["revenue"], _money(r["revenue"]), "revenue")
        + _number(r["revenue_share"], _share(r["revenue_share"]), "revenue_share")
        + _number(r.get("min_metric"), _money(r.get("min_metric")), "min_metric")
        + "</tr>"
        for r in rows
    )
    metric = next((r.get("metric") for r in rows if r.get("metric")), "revenue")
    return (
        f"<h2>Tier boundaries, {html.escape(latest)}</h2>"
        f"<table id='boundaries-table'><tr><th>segment</th>{groups}<th>customers</th>"
        f"<th>revenue</th><th>revenue share</th><th>least {html.escape(str(metric))}</th></tr>"
        f"{cells}</table>"
    )


def _clv_section(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    if not data.clv_models:
        return ""
    calibration = data.clv_models[0]["calibration_end"]
    fits = []
    for model in sorted(data.clv_models, key=lambda r: r["model"]):
        parameters = model["parameters"]
        errors = model["std_errors"] or {}
        for name in sorted(parameters):
            fits.append(
                f"<tr><td>{html.escape(model['model'])}</td><td>{html.escape(name)}</td>"
                + _number(parameters[name], f"{parameters[name]:.4g}", "parameter")
                + _number(errors.get(name), _maybe(errors.get(name)), "std_error")
                + "</tr>"
            )
    table = (
        "<table id='clv-models-table'><tr><th>model</th><th>parameter</th><th>estimate</th>"
        f"<th>standard error</th></tr>{''.join(fits)}</table>"
    )
    images = []
    for kind, title, name in (
        ("tracking", "Cumulative repeat purchases: actual and predicted", "clv-tracking"),
        ("frequency", "Holdout purchases by calibration frequency", "clv-frequency"),
    ):
        rows = [r for r in data.clv_validation if r["kind"] == kind]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for model in sorted({r["model"] for r in rows}):
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["time_index"])
            x = [r["time_index"] if kind == "tracking" else r["name"] for r in mine]
            ax.plot(x, [r["predicted"] for r in mine], linestyle="--", label=f"{model} predicted")
            if model == min(r["model"] for r in rows):
                ax.plot(x, [r["actual"] for r in mine], color="black", label="actual")
        ax.set_title(title)
        ax.set_xlabel("time unit" if kind == "tracking" else "purchases in the calibration")
        ax.legend(fontsize=8)
        images.append(_figure_tag(fig, title, name))
    return (
        f"<h2>Customer lifetime value, calibration to {html.escape(str(calibration))}</h2>"
        f"{table}{''.join(images)}"
    )


def _maybe(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
