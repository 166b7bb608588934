"""featurize: split the table and fit every encoding on the training rows.

Load the spec's columns (and the keys the split hashes) → `features.split.split_rule` and
`split_rows`, `features.encoding.fit_encoding` → write one Parquet file per split, the split
rule, the test rows' keys and the fitted encodings (sealed: steps/sealed.py). Each split is
written and freed before the next is cut, so the step holds the table about once (at millions
of rows the copies were the peak).
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pandas as pd

from flywheel.atomic import replacing_dir
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import ENCODINGS_FILE, SPLIT_RULE_FILE, TARGET, TEST_KEYS_FILE
from flywheel.steps.sealed import write_sealed


def run(ctx: StepContext) -> dict[str, Any]:
    from flywheel.data.io import feature_frame, read_table, target_vector
    from flywheel.data.task import task_of
    from flywheel.features.encoding import fit_encoding
    from flywheel.features.split import split_rows, split_rule

    if ctx.spec.is_image:
        return _run_images(ctx)
    spec, cfg = ctx.spec, ctx.params.featurize
    keys = list(dict.fromkeys([*spec.id_columns, *([cfg.split_by] if cfg.split_by else [])]))
    frame = read_table(ctx.data_path, columns=[*spec.feature_names, spec.target, *keys])
    y = target_vector(spec, frame)
    table = feature_frame(spec, frame).assign(**{TARGET: y})
    extra = [k for k in keys if k in frame.columns and k not in table.columns]
    keyed = pd.concat([table, frame[extra]], axis=1)
    rule = split_rule(spec, cfg, keyed)
    splits = split_rows(keyed, y, rule, task_of(spec))
    key_columns = [k for k in keys if k in keyed.columns]
    test_keys = keyed.take(splits["test"]).reset_index(drop=True)[key_columns]
    del frame, keyed
    encodings: dict[str, Any] = {}
    sizes = {}
    with replacing_dir(ctx.out("featurize")) as out:
        (out / SPLIT_RULE_FILE).write_text(json.dumps(rule.to_dict(), indent=2))
        # Row-aligned with test.parquet: what another version's split rule is applied to.
        # Not in test.parquet itself, whose head is the model's input example.
        test_keys.to_parquet(out / TEST_KEYS_FILE, index=False)
        for name, rows in splits.items():
            part = table.take(rows).reset_index(drop=True)
            part.to_parquet(out / f"{name}.parquet", index=False)
            sizes[name] = len(part)
            if name == "train":
                encodings = {
                    kind: fit_encoding(spec, part, kind, ctx.params.featurize.max_categories)
                    for kind in ("one_hot", "native")
                }
            del part
        data = pickle.dumps(encodings, protocol=pickle.HIGHEST_PROTOCOL)
        write_sealed(out / ENCODINGS_FILE, data, ctx.settings.signing_key)
    return sizes


def _run_images(ctx: StepContext) -> dict[str, Any]:
    """An image folder: one row per file (path, sha256, the encoded bytes the model decodes,
    the statistics), split by a hash of the file's content alone, so adding images never moves
    one already there. No encodings: the model decodes its own input (images/decode.py)."""
    from flywheel.data.io import target_vector
    from flywheel.data.task import task_of
    from flywheel.features.split import content_rule, split_rows
    from flywheel.images.folder import SHA_COLUMN, image_table

    spec = ctx.spec
    assert spec.image is not None
    table = image_table(ctx.data_path, spec.image, spec.target)
    y = target_vector(spec, table)
    table = table.drop(columns=spec.target).assign(**{TARGET: y})
    rule = content_rule(table[[SHA_COLUMN]], ctx.params.featurize)
    splits = split_rows(table, y, rule, task_of(spec))
    sizes = {}
    with replacing_dir(ctx.out("featurize")) as out:
        (out / SPLIT_RULE_FILE).write_text(json.dumps(rule.to_dict(), indent=2))
        table.take(splits["test"])[[SHA_COLUMN]].reset_index(drop=True).to_parquet(
            out / TEST_KEYS_FILE, index=False
        )
        for name, rows in splits.items():
            table.take(rows).reset_index(drop=True).to_parquet(out / f"{name}.parquet",
                                                               index=False)
            sizes[name] = len(rows)
    return sizes
