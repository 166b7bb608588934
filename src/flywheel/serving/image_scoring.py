"""Score decoded images with an image champion: the answers, and the rows the log keeps.

Called by the batcher (serving/batching.py) with the images of every request that waited for
the model, so one network call answers them all. Each answer is the task's (data/answers.py:
`prediction`, `probabilities` per class) with the lineage a table's answer carries; each log
row is the image's statistics and embedding summary (images/monitored.py), never its pixels.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flywheel.data.answers import answer_frame, json_answers
from flywheel.images.decode import Decoded
from flywheel.images.monitored import monitored_rows
from flywheel.serving.registry_watch import LoadedModel


def score_images(model: LoadedModel, decoded: list[Decoded],
                 metrics: Any = None) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """(answer, log row) per image, in order."""
    image = model.image_model
    if image is None:
        raise ValueError(f"version {model.version} is not an image model")
    task = image.task
    output = answer_frame(task, image.scores_of(decoded), image.threshold,
                          pd.RangeIndex(len(decoded)))
    if metrics is not None:
        metrics.observe_predictions(model.version, task, output)
    lineage = {"model_name": model.name, "model_version": model.version,
               "git_commit": model.git_commit, "data_md5": model.data_md5}
    return [(answer | lineage, row) for answer, row in
            zip(json_answers(task, output), monitored_rows(image, decoded), strict=True)]
