"""An image champion through the port: a real `bentoml serve` answering digit uploads.

One digit model (tests/integration/serving/digits.py) is registered and served for the whole
module. Uploads come as a user or an attacker sends them: multipart files and base64 JSON,
held-out digits and files that are not what the field must hold. The inference log is read
back from disk, and drift is judged on what was logged against a reference profile built
from other held-out digits the same way (images/monitored.py).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run_cli
from tests.integration.serving.conftest import (
    ROOT,
    Registry,
    Server,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.digits import digits, held_out, png, train_and_log

pytestmark = pytest.mark.slow
SENT = 40  # held-out digits uploaded one by one


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, Any]:
    registry, model = train_and_log(tmp_path_factory.mktemp("digits-registry"))
    registry.register(commit="d161751", data_md5="digits-v1")
    return registry, model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           champion: tuple[Registry, Any]) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("image-server"), champion[0])
    yield running
    stop_server(running)


def upload(server: Server, data: bytes, name: str = "digit.png", field: str = "image") -> Any:
    return server.client.post("/predict_image", files={field: (name, data, "image/png")})


def as_json(server: Server, payload: Any) -> Any:
    return server.client.post("/predict_image", json=payload)


def test_multipart_uploads_of_held_out_digits_get_their_class(served: Server) -> None:
    images, labels = held_out(SENT)
    answers = []
    for data in images:
        response = upload(served, data)
        assert response.status_code == 200, response.text
        assert len(response.headers["x-request-id"]) == 32
        answers.append(response.json()[0])
    right = sum(a["prediction"] == label for a, label in zip(answers, labels, strict=True))
    assert right / SENT >= 0.8
    first = answers[0]
    assert set(first["probabilities"]) == {str(d) for d in range(10)}
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-6
    assert first["prediction"] == max(first["probabilities"], key=first["probabilities"].get)
    assert (first["model_name"], first["model_version"]) == ("flywheel-digits-test", "1")
    assert (first["git_commit"], first["data_md5"]) == ("d161751", "digits-v1")


def test_base64_json_one_image_and_a_list_answer_as_the_upload_does(served: Server) -> None:
    images, _ = held_out(3)
    encoded = [base64.b64encode(data).decode() for data in images]
    one = as_json(served, {"image": encoded[0]})
    several = as_json(served, [{"image": text} for text in encoded])
    assert one.status_code == several.status_code == 200, several.text
    assert one.json()[0]["prediction"] == upload(served, images[0]).json()[0]["prediction"]
    for answer, data in zip(several.json(), images, strict=True):  # float32: batch-size noise
        alone = upload(served, data).json()[0]["probabilities"]
        assert answer["probabilities"] == pytest.approx(alone, abs=1e-5)


def _noise_png(side: int) -> bytes:
    return png(np.random.default_rng(1).integers(0, 256, (side, side)))


def _refusals() -> list[Any]:
    digit = held_out(1)[0][0]
    return [
        pytest.param({"files": {"image": ("big.png", _noise_png(200), "image/png")}}, 413,
                     "more than image.max_bytes", id="over-max-bytes"),
        pytest.param({"files": {"image": ("huge.png", b"\0" * 2_000_000, "image/png")}}, 413,
                     "over the limit", id="body-over-limit"),
        pytest.param({"files": {"image": ("digit.png", b"label,value\n1,2\n", "image/png")}},
                     422, "not a readable PNG or JPEG", id="text-renamed-png"),
        pytest.param({"files": {"image": ("digit.png", digit[:-30], "image/png")}}, 422,
                     "not a readable PNG or JPEG", id="truncated"),
        pytest.param({"files": {"image": ("big.png", png(np.zeros((30, 28))), "image/png")}},
                     422, "28x30 pixels, expected 28x28", id="wrong-size"),
        pytest.param({"files": {"file": ("digit.png", digit, "image/png")}}, 422,
                     "missing field 'image' (got 'file')", id="wrong-field"),
        pytest.param({"data": {"image": "not a file"}, "files": {"x": ("x", b"x")}}, 422,
                     "field 'image' must be a file upload", id="text-field"),
        pytest.param({"json": {"picture": "aGk="}}, 422, "missing field 'image'",
                     id="json-no-field"),
        pytest.param({"json": {"image": "%%%"}}, 422, "not valid base64", id="bad-base64"),
        pytest.param({"content": b"image=abc", "headers": {"content-type": "text/plain"}}, 415,
                     "multipart/form-data", id="not-json-or-form"),
    ]


@pytest.mark.parametrize("request_kwargs, status, message", _refusals())
def test_what_is_not_a_digit_upload_is_a_4xx_in_one_line_naming_the_field(
        served: Server, request_kwargs: dict[str, Any], status: int, message: str) -> None:
    response = served.client.post("/predict_image", **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error
    assert "\n" not in error
    if status == 422:
        assert "'image'" in error


def test_records_sent_to_an_image_champion_are_pointed_at_its_endpoint(served: Server) -> None:
    response = served.client.post("/predict", json=[{"width": 28}])
    assert response.status_code == 400
    assert "/predict_image" in response.json()["error"]


def test_the_openapi_document_lists_the_upload_endpoint(served: Server) -> None:
    doc = served.client.get("/docs.json").json()
    post = doc["paths"]["/predict_image"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image"] and form["properties"]["image"]["format"] == "binary"
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]["items"]
    assert {"prediction", "probabilities", "model_version"} <= set(answer["properties"])
    assert {"413", "422", "503"} <= set(post["responses"])
    assert "/predict_image" in doc["info"]["description"]


def _logged(server: Server, request_ids: set[str]) -> pd.DataFrame:
    files = sorted(server.log_dir.glob("*.parquet"))
    frame = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
    if frame.empty:
        return frame
    return frame[frame["request_id"].isin(request_ids)]


def _wait_logged(server: Server, request_ids: set[str], rows: int) -> pd.DataFrame:
    def found() -> list[pd.DataFrame]:  # a list: a frame has no truth value for wait_for
        frame = _logged(server, request_ids)
        return [frame] if len(frame) == rows else []

    return wait_for(found, 30, f"{rows} rows of requests {sorted(request_ids)} in the log")[0]


def _send_batch(server: Server, pixels: np.ndarray) -> set[str]:
    ids = set()
    for start in range(0, len(pixels), 100):
        payload = [{"image": base64.b64encode(png(p)).decode()} for p in pixels[start:start + 100]]
        response = as_json(server, payload)
        assert response.status_code == 200, response.text
        ids.add(response.headers["x-request-id"])
    return ids


def test_logged_rows_hold_statistics_and_embedding_not_pixels(served: Server) -> None:
    response = upload(served, held_out(1)[0][0])
    request_id = response.headers["x-request-id"]
    rows = _wait_logged(served, {request_id}, 1)
    row = rows.iloc[0]
    assert row["width"] == row["height"] == 28 and row["channels"] == 1
    assert 0 < row["mean_intensity"] < 255 and row["embedding_norm"] > 0
    assert row["prediction"] == response.json()[0]["prediction"]
    assert not {"image", "pixels"} & set(rows.columns)
    assert max(len(str(v)) for v in row.to_numpy()) < 100  # no column holds an image's bytes
    feedback = served.client.post("/feedback", headers=served.auth("feedback"),
                                  json={"request_id": request_id, "label": "7"})
    assert feedback.status_code == 200, feedback.text


def test_darkened_digits_drift_on_image_statistics_and_held_out_ones_do_not(
        served: Server, champion: tuple[Registry, Any]) -> None:
    import pyarrow as pa

    from flywheel.config import load_params
    from flywheel.images.monitored import monitored_frame, monitored_spec
    from flywheel.monitoring.drift import window_drift
    from flywheel.monitoring.profile import build_profile

    model = champion[1]
    pixels, _ = digits()
    reference = model.decode(pd.DataFrame({"image": [png(p) for p in pixels[-600:]]}))
    cfg = load_params(ROOT / "params.yaml").monitor.model_copy(update={"min_rows": 100})
    profile = build_profile(monitored_spec(model.spec), monitored_frame(model, reference),
                            model.scores_of(reference), cfg)
    plain = _send_batch(served, pixels[2000:2300])
    dark = _send_batch(served, (pixels[2300:2600] * 0.4).astype(np.uint8))
    verdicts = {}
    for name, ids in (("plain", plain), ("dark", dark)):
        rows = _wait_logged(served, ids, 300)
        features, _, _ = window_drift(profile, pa.Table.from_pandas(rows), cfg)
        verdicts[name] = {n for n, result in features.items() if result["drifted"]}
    assert verdicts["plain"] == set()
    assert {"mean_intensity", "std_intensity"} <= verdicts["dark"]


def test_monitored_columns_are_a_fixed_set(champion: tuple[Registry, Any]) -> None:
    from flywheel.images.monitored import EMBEDDING_COLUMNS, monitored_spec
    from flywheel.images.stats import STAT_COLUMNS

    spec = monitored_spec(champion[1].spec)
    assert [f.name for f in spec.features] == [*STAT_COLUMNS, *EMBEDDING_COLUMNS]
    assert monitored_spec(spec) == spec  # idempotent: a logged spec is not extended twice


def test_predict_dir_scores_a_folder_into_parquet_and_lists_unreadable_files(
        tmp_path: Path, champion: tuple[Registry, Any]) -> None:
    registry = champion[0]
    images, labels = held_out(20)
    folder = tmp_path / "inbox"
    for index, (data, label) in enumerate(zip(images, labels, strict=True)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{index:02d}.png").write_bytes(data)
    (folder / "notes.txt").write_text("not an image, not a listed extension\n")
    (folder / "broken.png").write_bytes(images[0][:-30])  # truncated
    (folder / "fake.png").write_text("label,value\n1,2\n")  # text renamed .png
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = registry.name
    params["predict"]["chunk_rows"] = 8  # several chunks: progress lines
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "FLYWHEEL_ROOT": str(ROOT),
           "FLYWHEEL_PARAMS_FILE": str(tmp_path / "params.yaml"),
           "FLYWHEEL_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
           "FLYWHEEL_TRACKING_URI": registry.uri, "MLFLOW_TRACKING_URI": registry.uri}

    done = run_cli(ROOT, "predict", str(folder), base=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (22, 20, 2)
    assert "22 of 22 images read" in done.stdout + done.stderr  # progress, per chunk
    scored = pd.read_parquet(summary["output"])
    assert scored["path"].str.startswith(tuple(f"{d}/" for d in range(10))).all()
    truth = scored["path"].str.split("/").str[0]
    assert (scored["prediction"] == truth).mean() >= 0.75
    probabilities = scored[[f"probability_{d}" for d in range(10)]].sum(axis=1)
    assert np.allclose(probabilities, 1) and set(scored["model_version"]) == {"1"}
    rejects = pd.read_csv(summary["rejects"])
    assert rejects["path"].tolist() == ["broken.png", "fake.png"]
    assert rejects["problem"].str.contains("not a readable PNG or JPEG").all()

    table = tmp_path / "rows.csv"
    table.write_text("width\n28\n")
    refused = run_cli(ROOT, "predict", str(table), base=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "is an image model; give it a folder of images" in refused.stderr
