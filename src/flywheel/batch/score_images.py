"""`flywheel predict DIR`: a folder of images scored offline with an image champion.

Every file under the folder whose extension the spec lists (image.extensions) is decoded by
the spec's own rules (images/decode.py, as serving and training decode) and scored in chunks
of `predict.chunk_rows` images. A file that does not decode is skipped and counted: it is
listed with its one-line reason in `<OUTPUT stem>.rejects.csv`, as a table's bad rows are, and
the run fails (nothing written) only when no file scores. The Parquet holds one row per image:
its path relative to the folder, the answer's flat columns (`prediction`, `probability_<class>`)
and the version's lineage. Progress is logged every chunk, so a long folder shows it moves.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.data.answers import flat_answers
from flywheel.errors import DataError
from flywheel.images.decode import Decoded, decode_image

logger = logging.getLogger(__name__)


def image_files(folder: Path, extensions: list[str]) -> list[Path]:
    """The folder's images (any depth), in a stable order; other files are not images."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def score_folder(job: Any, scorer: Any, lineage: dict[str, str], out: Path,
                 rejects: Path) -> tuple[int, int]:
    """Score `job.source` into `out` (Parquet) and `rejects` (CSV); (files, rejected)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = image_files(job.source, scorer.image.extensions)
    if not files:
        raise DataError(f"{job.source}: no files with extensions {scorer.image.extensions}")
    writer: Any = None
    bad: list[dict[str, str]] = []
    started = time.monotonic()
    try:
        for start in range(0, len(files), job.chunk_rows):
            chunk = files[start:start + job.chunk_rows]
            names, decoded = _decoded(job.source, chunk, scorer, bad)
            if decoded:
                table = pa.Table.from_pandas(_answers(names, decoded, scorer, lineage),
                                             preserve_index=False)
                writer = writer or pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
            logger.info("%d of %d images read (%d rejected, %.0f s)", start + len(chunk),
                        len(files), len(bad), time.monotonic() - started)
    finally:
        if writer is not None:
            writer.close()
    if bad:
        pd.DataFrame(bad).to_csv(rejects, index=False)
    return len(files), len(bad)


def _decoded(folder: Path, files: list[Path], scorer: Any,
             bad: list[dict[str, str]]) -> tuple[list[str], list[Decoded]]:
    names, decoded = [], []
    for path in files:
        name = str(path.relative_to(folder))
        try:
            decoded.append(decode_image(path.read_bytes(), scorer.image, name))
            names.append(name)
        except (DataError, OSError) as exc:
            bad.append({"path": name, "problem": str(exc).splitlines()[0]})
    return names, decoded


def _answers(names: list[str], decoded: list[Decoded], scorer: Any,
             lineage: dict[str, str]) -> pd.DataFrame:
    from flywheel.data.answers import answer_frame

    index = pd.RangeIndex(len(decoded))
    output = answer_frame(scorer.task, scorer.scores_of(decoded), scorer.threshold, index)
    frame = pd.DataFrame({"path": names})
    for name, values in flat_answers(scorer.task, output).items():
        frame[name] = values
    for key, value in lineage.items():
        frame[key] = value
    return frame
