"""Vega-Lite specs for the evaluation plots, rendered to PNG offline with vl-convert.

The specs are plain dicts with their data inlined; nothing is fetched from the network.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier, never fetched
SIZE = {"width": 360, "height": 300}
MODEL_COLOR = {
    "field": "model",
    "type": "nominal",
    "title": "model",
    "scale": {"domain": ["candidate", "champion"], "range": ["#1f77b4", "#ff7f0e"]},
}
DIAGONAL = {
    "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
    "mark": {"type": "line", "strokeDash": [4, 4], "color": "#999999"},
    "encoding": {
        "x": {"field": "x", "type": "quantitative"},
        "y": {"field": "y", "type": "quantitative"},
    },
}


def _curve(
    records: list[dict],
    x: str,
    y: str,
    title: str,
    x_title: str,
    y_title: str,
    diagonal: bool,
    points: bool = False,
) -> dict:
    curve = {
        "data": {"values": records},
        # keep each model's points in the order they were computed: a curve, not a sort by x
        "transform": [{"window": [{"op": "row_number", "as": "step"}], "groupby": ["model"]}],
        "mark": {"type": "line", "point": points, "interpolate": "linear"},
        "encoding": {
            "x": {
                "field": x,
                "type": "quantitative",
                "title": x_title,
                "scale": {"domain": [0, 1]},
            },
            "y": {
                "field": y,
                "type": "quantitative",
                "title": y_title,
                "scale": {"domain": [0, 1]},
            },
            "color": MODEL_COLOR,
            "order": {"field": "step", "type": "quantitative"},
        },
    }
    layers = [DIAGONAL, curve] if diagonal else [curve]
    return {"$schema": SCHEMA, "title": title, **SIZE, "layer": layers}


def roc_spec(records: list[dict]) -> dict:
    return _curve(
        records,
        "fpr",
        "tpr",
        "ROC curve",
        "false positive rate",
        "true positive rate",
        diagonal=True,
    )


def pr_spec(records: list[dict]) -> dict:
    return _curve(
        records,
        "recall",
        "precision",
        "Precision-recall curve",
        "recall",
        "precision",
        diagonal=False,
    )


def calibration_spec(records: list[dict]) -> dict:
    return _curve(
        records,
        "mean_predicted",
        "fraction_positive",
        "Calibration",
        "mean predicted probability",
        "fraction positive",
        diagonal=True,
        points=True,
    )


def confusion_spec(counts: list[dict]) -> dict:
    """Heat map of counts; `counts` holds model, actual, predicted and count per cell."""
    cells = {
        "encoding": {
            "x": {
                "field": "predicted",
                "type": "nominal",
                "title": "predicted",
                "axis": {"labelAngle": 0},
            },
            "y": {"field": "actual", "type": "nominal", "title": "actual"},
        },
        "layer": [
            {
                "mark": "rect",
                "encoding": {
                    "color": {
                        "field": "count",
                        "type": "quantitative",
                        "scale": {"scheme": "blues"},
                        "legend": None,
                    }
                },
            },
            {
                "mark": {"type": "text", "fontSize": 16},
                "encoding": {
                    "text": {"field": "count", "type": "quantitative"},
                    "color": {
                        "condition": {"test": "datum.share > 0.5", "value": "white"},
                        "value": "black",
                    },
                },
            },
        ],
    }
    return {
        "$schema": SCHEMA,
        "title": "Confusion matrix (test rows)",
        "data": {"values": counts},
        "transform": [
            {
                "joinaggregate": [{"op": "max", "field": "count", "as": "most"}],
                "groupby": ["model"],
            },
            {"calculate": "datum.count / datum.most", "as": "share"},
        ],
        "facet": {
            "column": {
                "field": "model",
                "type": "nominal",
                "title": None,
                "sort": ["candidate", "champion"],
            }
        },
        "spec": {"width": 200, "height": 200, **cells},
    }


def warm_renderer() -> None:
    """Start vl-convert's JavaScript engine (half a second, once per process) ahead of use."""
    render_png({"data": {"values": [{"x": 0}]}, "mark": "point"}, scale=1.0)


def render_png(spec: dict, scale: float = 2.0) -> bytes:
    """PNG bytes of a Vega-Lite spec, rendered in-process (vl-convert bundles Vega; offline)."""
    import vl_convert

    return bytes(vl_convert.vegalite_to_png(spec, scale=scale))


def _scatter(records: list[dict], x: str, y: str, title: str) -> dict:
    return {
        "mark": {"type": "point", "filled": True, "opacity": 0.5, "size": 12},
        "data": {"values": records},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x, "scale": {"zero": False}},
            "y": {"field": y, "type": "quantitative", "title": y, "scale": {"zero": False}},
            "color": MODEL_COLOR,
        },
        "title": title,
    }


def predicted_actual_spec(records: list[dict]) -> dict:
    """Predicted against actual values, with the line where they are equal."""
    values = [r[k] for r in records for k in ("actual", "predicted")] or [0.0]
    low, high = min(values), max(values)
    identity = {
        **DIAGONAL,
        "data": {"values": [{"x": low, "y": low}, {"x": high, "y": high}]},
    }
    scatter = _scatter(records, "actual", "predicted", "")
    scatter.pop("title")
    return {"$schema": SCHEMA, "title": "Predicted vs actual", **SIZE, "layer": [identity, scatter]}


def residual_spec(records: list[dict]) -> dict:
    """Residuals (actual - predicted) against the prediction: structure here is bias."""
    return {"$schema": SCHEMA, **SIZE, **_scatter(records, "predicted", "residual", "Residuals")}
