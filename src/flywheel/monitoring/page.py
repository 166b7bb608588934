"""The monitor report as one offline HTML page: Vega-Lite plots rendered to PNG, and tables.

Same rendering as the evaluation report (vl-convert, data inlined, nothing fetched): feature
drift bars against their alarm levels, the score distribution of the reference against the
current window, and live metrics over time.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from flywheel.evaluation.plots import SCHEMA, render_png
from flywheel.evaluation.report import page_html
from flywheel.monitoring.live import LIVE_METRICS

SIZE = {"width": 420, "height": 300}


def drift_spec(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values = [
        {
            "feature": name,
            "psi": f["psi"],
            "threshold": f["threshold"],
            "state": "drifted" if f["drifted"] else "ok",
        }
        for name, f in features.items()
        if f["psi"] is not None
    ]
    color = {
        "field": "state",
        "type": "nominal",
        "scale": {"domain": ["ok", "drifted"], "range": ["#1f77b4", "#c62828"]},
    }
    return {
        "$schema": SCHEMA,
        "title": "Feature drift (PSI) and alarm level",
        **SIZE,
        "data": {"values": values},
        "encoding": {
            "y": {
                "field": "feature",
                "type": "nominal",
                "sort": {"field": "psi", "order": "descending"},
            }
        },
        "layer": [
            {
                "mark": "bar",
                "encoding": {"x": {"field": "psi", "type": "quantitative"}, "color": color},
            },
            {
                "mark": {"type": "tick", "color": "#222", "thickness": 2},
                "encoding": {"x": {"field": "threshold", "type": "quantitative"}},
            },
        ],
    }


def score_spec(bins: dict[str, Any]) -> dict[str, Any]:
    labels = bins.get("categories") or _bin_labels(bins["edges"])
    values = [
        {"bin": label, "order": i, "source": source, "share": shares[i]}
        for source in ("reference", "current")
        for i, label in enumerate(labels)
        for shares in [bins[source]]
    ]
    return {
        "$schema": SCHEMA,
        "title": "Score distribution: reference vs current",
        **SIZE,
        "data": {"values": values},
        "mark": "bar",
        "encoding": {
            "x": {
                "field": "bin",
                "type": "ordinal",
                "sort": {"field": "order"},
                "title": "score bin (reference quantiles, or predicted class)",
            },
            "xOffset": {"field": "source"},
            "y": {"field": "share", "type": "quantitative"},
            "color": {"field": "source", "type": "nominal"},
        },
    }


def _bin_labels(edges: list[float]) -> list[str]:
    labels = [f"≤{edges[0]:.2f}" if edges else "all"]
    labels += [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return labels + ([f">{edges[-1]:.2f}"] if edges else [])


def live_spec(windows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [
        {"start": w["start"], "model_version": w["model_version"], "metric": name, "value": w[name]}
        for w in windows
        for name in LIVE_METRICS
        if w.get(name) is not None
    ]
    return {
        "$schema": SCHEMA,
        "title": "Live metrics over time",
        **SIZE,
        "data": {"values": values},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "start", "type": "temporal", "title": "window start"},
            "y": {"field": "value", "type": "quantitative"},
            "color": {"field": "metric", "type": "nominal"},
            "strokeDash": {"field": "model_version", "type": "nominal"},
        },
    }


def render_page(report: dict[str, Any]) -> str:
    """A self-contained page: no script, stylesheet or image fetched from anywhere."""
    specs = {"drift": drift_spec(report["features"])}
    if "bins" in report["score"]:
        specs["score"] = score_spec(report["score"]["bins"])
    if report["live"]["windows"]:
        specs["live"] = live_spec(report["live"]["windows"])
    images = "".join(
        f"<figure><img alt='{name}' src='data:image/png;base64,"
        f"{base64.b64encode(render_png(spec)).decode('ascii')}'></figure>"
        for name, spec in specs.items()
    )
    window = report["window"]
    verdict = (
        "not enough traffic"
        if not report["enough_traffic"]
        else "DRIFTED"
        if report["drifted"]
        else "no drift"
    )
    live = report["live"]
    return page_html(
        "Flywheel monitor",
        f"""<h1>{_esc(report["model_name"])} version {_esc(report["model_version"])}: {verdict}</h1>
<p>{window["rows"]} rows logged from {_esc(window["start"])} to {_esc(window["end"])}
(at least {window["min_rows"]} needed). Written {_esc(report["generated_at"])}.</p>
<p>Live: {live["labelled_rows"]} labelled rows; decayed: {live["decayed"]}
{_esc(", ".join(live.get("breaches", [])))}</p>
<p>{_esc(report.get("drift", {}).get("rule", ""))}</p>
{images}
<h2>Features</h2>
{_feature_table(report)}
{_excluded(report.get("excluded", {}))}
""",
    )


def _feature_table(report: dict[str, Any]) -> str:
    columns = [
        "psi",
        "threshold",
        "p_value",
        "js",
        "wasserstein",
        "other_rate",
        "other_reference",
        "missing_rate_change",
    ]
    rows = [("score", report["score"]), *report["features"].items()]
    body = "".join(
        f"<tr class='{'drifted' if f['drifted'] else ''}'><td>{_esc(name)}</td>"
        + "".join(f"<td>{_fmt(f.get(c))}</td>" for c in columns)
        + f"<td>{'yes' if f['drifted'] else ''}</td></tr>"
        for name, f in rows
    )
    head = "".join(f"<th>{c}</th>" for c in ["feature", *columns, "drifted"])
    return f"<table><tr>{head}</tr>{body}</table>"


def _excluded(excluded: dict[str, str]) -> str:
    """One line per feature left out of drift, with the reason."""
    if not excluded:
        return ""
    items = "".join(f"<li>{_esc(name)}: {_esc(why)}</li>" for name, why in excluded.items())
    return f"<h2>Not compared</h2><ul>{items}</ul>"


def _fmt(value: Any) -> str:
    return "&ndash;" if value is None else f"{value:.4f}"


def _esc(value: Any) -> str:
    return html.escape(str(value))
