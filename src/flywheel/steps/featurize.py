"""featurize: split the table and fit every encoding on the training rows.

Load the spec's columns → `features.split_rows` and `features.encoding.fit_encoding` → write
one Parquet file per split and the fitted encodings. Each split is written and freed before the
next is cut, so the step holds the table about once (at millions of rows the copies were the
peak).
"""

from __future__ import annotations

import pickle
from typing import Any

from flywheel.atomic import replacing_dir
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import ENCODINGS_FILE, TARGET


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.data.io import feature_frame, read_table, target_vector
    from flywheel.features.encoding import fit_encoding
    from flywheel.features.split import split_rows

    spec = ctx.spec
    frame = read_table(ctx.data_path, columns=[*(f.name for f in spec.features), spec.target])
    y = target_vector(spec, frame)
    table = feature_frame(spec, frame).assign(**{TARGET: y})
    del frame
    encodings: dict[str, Any] = {}
    sizes = {}
    with replacing_dir(ctx.out("featurize")) as out:
        for name, rows in split_rows(y, ctx.params.featurize).items():
            part = table.take(rows).reset_index(drop=True)
            part.to_parquet(out / f"{name}.parquet", index=False)
            sizes[name] = len(part)
            if name == "train":
                encodings = {
                    kind: fit_encoding(spec, part, kind, ctx.params.featurize.max_categories)
                    for kind in ("one_hot", "native")
                }
            del part
        with (out / ENCODINGS_FILE).open("wb") as fh:
            pickle.dump(encodings, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return sizes
