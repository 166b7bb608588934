"""The training library on small synthetic data: every candidate learns, selection is right,
the torch MLP is seeded, checkpointed, picklable, and asks for mixed precision only on CUDA."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from flywheel.config import HGBParams, LogRegParams, MLPParams, TrainParams
from flywheel.errors import ConfigError, DataError
from flywheel.training import cuda_graph, heads
from flywheel.training import mlp as mlp_module
from flywheel.training.candidates import (
    CandidateResult,
    Matrices,
    select_best,
    train_candidates,
    valid_metrics,
)
from flywheel.training.device import DeviceChoice, choose_device
from flywheel.training.mlp import CHECKPOINT_NAME, build_mlp, fit_mlp, load_checkpoint


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=600, n_features=12, n_informative=6, class_sep=1.5,
                               random_state=0)
    X, y = X.astype(np.float64), y.astype(np.int64)
    return X[:400], y[:400], X[400:], y[400:]


def mlp_params(**overrides: object) -> MLPParams:
    values = dict(hidden_sizes=[16, 8], dropout=0.1, lr=0.01, weight_decay=1e-4, batch_size=64,
                  max_epochs=12, patience=3, device="cpu")
    return MLPParams(**{**values, **overrides})


def train_params(candidates: list[str], **mlp_overrides: object) -> TrainParams:
    return TrainParams(
        candidates=candidates, seed=0, selection_metric="roc_auc",
        logreg=LogRegParams(C=1.0, max_iter=500),
        hgb=HGBParams(learning_rate=0.1, max_iter=30, max_leaf_nodes=8, l2_regularization=1.0,
                      n_iter_no_change=5),
        mlp=mlp_params(**mlp_overrides),
    )


def same(X_train: np.ndarray, X_valid: np.ndarray) -> dict[str, Matrices]:
    """Numbers only: every candidate's encoding is the matrix itself."""
    return dict.fromkeys(("one_hot", "native"), Matrices(X_train, X_valid))


def result(name: str, **metrics: float) -> CandidateResult:
    return CandidateResult(name=name, estimator=None, valid_metrics=metrics, seconds=0.0,
                           details={})


# --- train_candidates ---------------------------------------------------------------------

@pytest.mark.slow  # fits all three candidates, the torch MLP included
def test_every_candidate_learns_in_the_order_given(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    messages: list[str] = []
    results = train_candidates(train_params(["mlp", "logreg", "hgb"]), same(X_train, X_valid),
                               y_train, y_valid, tmp_path, progress=messages.append)

    assert [r.name for r in results] == ["mlp", "logreg", "hgb"]
    for r in results:
        assert {"roc_auc", "pr_auc", "log_loss"} <= r.valid_metrics.keys()
        assert r.valid_metrics["roc_auc"] > 0.8, r
        assert r.seconds >= 0
        proba = r.estimator.predict_proba(X_valid)
        assert proba.shape == (len(X_valid), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        # the reported metrics are those of the returned estimator
        assert valid_metrics(y_valid, proba[:, 1])["roc_auc"] == pytest.approx(
            r.valid_metrics["roc_auc"])
    mlp = results[0]
    assert mlp.details["device"] == "cpu" and mlp.details["amp"] is False
    assert 1 <= mlp.details["best_epoch"] <= mlp.details["epochs_run"] <= 12
    assert mlp.details["samples_per_s"] > 0
    assert any(m.startswith("training mlp") for m in messages)
    assert any("logreg: valid roc_auc" in m for m in messages)


def test_a_single_class_valid_split_is_a_data_error(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, _ = data
    with pytest.raises(DataError, match="only one class"):
        train_candidates(train_params(["logreg"]), same(X_train, X_valid), y_train,
                         np.zeros(len(X_valid), dtype=np.int64), tmp_path)


# --- select_best --------------------------------------------------------------------------

def test_select_best_takes_the_highest_auc() -> None:
    results = [result("logreg", roc_auc=0.80, pr_auc=0.7, log_loss=0.40),
               result("hgb", roc_auc=0.85, pr_auc=0.6, log_loss=0.45),
               result("mlp", roc_auc=0.82, pr_auc=0.8, log_loss=0.35)]
    assert select_best(results, "roc_auc").name == "hgb"
    assert select_best(results, "pr_auc").name == "mlp"


def test_select_best_takes_the_lowest_log_loss_for_neg_log_loss() -> None:
    results = [result("logreg", roc_auc=0.9, pr_auc=0.9, log_loss=0.40),
               result("hgb", roc_auc=0.8, pr_auc=0.8, log_loss=0.30),
               result("mlp", roc_auc=0.7, pr_auc=0.7, log_loss=0.50)]
    assert select_best(results, "neg_log_loss").name == "hgb"


def test_select_best_breaks_ties_by_order() -> None:
    results = [result("hgb", roc_auc=0.8, pr_auc=0.5, log_loss=0.4),
               result("logreg", roc_auc=0.8, pr_auc=0.5, log_loss=0.4)]
    assert select_best(results, "roc_auc").name == "hgb"
    assert select_best(results, "neg_log_loss").name == "hgb"
    assert select_best(list(reversed(results)), "roc_auc").name == "logreg"


def test_select_best_rejects_an_unknown_metric() -> None:
    with pytest.raises(ConfigError, match="selection_metric"):
        select_best([result("hgb", roc_auc=0.8, pr_auc=0.5, log_loss=0.4)], "accuracy")


# --- the torch MLP ------------------------------------------------------------------------

def test_mlp_is_deterministic_for_a_seed(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    threads = torch.get_num_threads()
    runs = [fit_mlp(mlp_params(), seed, X_train, y_train, X_valid, y_valid, tmp_path / str(i))
            for i, seed in enumerate([7, 7, 8])]
    first, again, other = (r.estimator.predict_proba(X_valid) for r in runs)
    np.testing.assert_array_equal(first, again)
    assert runs[0].details["best_epoch"] == runs[1].details["best_epoch"]
    assert not np.array_equal(first, other)  # the seed is really used
    assert torch.get_num_threads() == threads  # the thread cap is undone after training


def test_checkpoint_carries_its_config_and_reloads(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    params = mlp_params()
    fit = fit_mlp(params, 0, X_train, y_train, X_valid, y_valid, tmp_path / "ckpt")

    path = tmp_path / "ckpt" / CHECKPOINT_NAME
    assert path.is_file()
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["params"] == params.model_dump()
    assert checkpoint["input_dim"] == X_train.shape[1]
    assert checkpoint["epoch"] == fit.details["best_epoch"]
    assert checkpoint["valid_loss"] == pytest.approx(fit.details["best_valid_loss"])
    # the estimator holds the best epoch's weights, which is what the checkpoint holds
    reloaded, _ = load_checkpoint(path)
    np.testing.assert_array_equal(reloaded.predict_proba(X_valid),
                                  fit.estimator.predict_proba(X_valid))


def test_early_stopping_stops_after_patience(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    # A large learning rate overfits quickly, so valid loss turns up well before max_epochs.
    fit = fit_mlp(mlp_params(lr=0.05, hidden_sizes=[64, 64], dropout=0.0, max_epochs=200,
                             patience=2), 0, X_train, y_train, X_valid, y_valid, tmp_path)
    assert fit.details["epochs_run"] == fit.details["best_epoch"] + 2
    assert fit.details["epochs_run"] < 200


def test_a_diverging_fit_is_a_config_error(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    with pytest.raises(ConfigError, match="never finite"):
        fit_mlp(mlp_params(max_epochs=2), 0, np.full_like(X_train, np.nan), y_train, X_valid,
                y_valid, tmp_path)


def test_pickled_estimator_predicts_identically(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    estimator = fit_mlp(mlp_params(), 0, X_train, y_train, X_valid, y_valid, tmp_path).estimator
    restored = pickle.loads(pickle.dumps(estimator))

    assert not restored.module.training
    assert all(p.device.type == "cpu" for p in restored.module.parameters())
    np.testing.assert_array_equal(restored.predict_proba(X_valid),
                                  estimator.predict_proba(X_valid))
    with pytest.raises(ValueError, match="features"):
        restored.predict_proba(X_valid[:, :3])


def test_predict_proba_batches_large_inputs(data, tmp_path: Path, monkeypatch) -> None:
    X_train, y_train, X_valid, y_valid = data
    estimator = fit_mlp(mlp_params(), 0, X_train, y_train, X_valid, y_valid, tmp_path).estimator
    whole = estimator.predict_proba(X_valid)
    monkeypatch.setattr(heads, "PREDICT_BATCH", 7)
    np.testing.assert_allclose(estimator.predict_proba(X_valid), whole, rtol=1e-5)


# --- device choice and mixed precision ----------------------------------------------------

def test_auto_without_cuda_is_cpu_without_amp() -> None:
    assert choose_device("auto", cuda_available=False) == DeviceChoice("cpu", False, None)
    assert choose_device("cpu", cuda_available=True) == DeviceChoice("cpu", False, None)


def test_auto_with_cuda_turns_amp_on() -> None:
    bf16 = choose_device("auto", cuda_available=True, bf16_supported=True)
    assert bf16 == DeviceChoice("cuda", True, "bfloat16") and not bf16.grad_scaler
    fp16 = choose_device("cuda", cuda_available=True, bf16_supported=False)
    assert fp16 == DeviceChoice("cuda", True, "float16") and fp16.grad_scaler


def test_cuda_requested_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA device.*'auto'"):
        choose_device("cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        choose_device("tpu", cuda_available=False)


def test_the_default_device_follows_torch() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").device == expected


REAL_GRAD_SCALER = torch.amp.GradScaler


class Recorder:
    """Stands in for torch.autocast / GradScaler: records what the loop asked for."""

    def __init__(self) -> None:
        self.autocast_calls: list[dict[str, object]] = []
        self.scaler_calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def autocast(self, device_type: str, dtype: object = None, enabled: bool = True,
                 **_: object) -> contextlib.AbstractContextManager[None]:
        self.autocast_calls.append({"device_type": device_type, "dtype": dtype,
                                    "enabled": enabled})
        return contextlib.nullcontext()

    def grad_scaler(self, *args: object, **kwargs: object) -> torch.amp.GradScaler:
        self.scaler_calls.append((args, kwargs))
        return REAL_GRAD_SCALER("cpu", enabled=False)  # a pass-through scaler on CPU


@pytest.mark.parametrize(("bf16", "dtype", "scaled"),
                         [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_loop_asks_for_cuda_autocast_when_the_choice_says_cuda(
    data, tmp_path: Path, monkeypatch, bf16: bool, dtype: torch.dtype, scaled: bool
) -> None:
    # Run the CUDA plan on CPU: record autocast/GradScaler and keep tensors where they are.
    X_train, y_train, X_valid, y_valid = data
    recorder = Recorder()
    monkeypatch.setattr(torch, "autocast", recorder.autocast)
    monkeypatch.setattr(torch.amp, "GradScaler", recorder.grad_scaler)
    monkeypatch.setattr(mlp_module, "_to_device", lambda obj, device: obj)
    choice = choose_device("auto", cuda_available=True, bf16_supported=bf16)

    fit = fit_mlp(mlp_params(max_epochs=2), 0, X_train, y_train, X_valid, y_valid, tmp_path,
                  choice=choice)

    assert recorder.autocast_calls  # one per training step and one per validation pass
    assert all(call == {"device_type": "cuda", "dtype": dtype, "enabled": True}
               for call in recorder.autocast_calls)
    (args, kwargs), = recorder.scaler_calls
    assert args == ("cuda",) and kwargs == {"enabled": scaled}
    assert fit.details["device"] == "cuda" and fit.details["amp"] is True


def test_loop_leaves_autocast_off_on_cpu(data, tmp_path: Path, monkeypatch) -> None:
    X_train, y_train, X_valid, y_valid = data
    recorder = Recorder()
    monkeypatch.setattr(torch, "autocast", recorder.autocast)
    fit_mlp(mlp_params(max_epochs=1), 0, X_train, y_train, X_valid, y_valid, tmp_path,
            choice=choose_device("auto", cuda_available=False))
    assert recorder.autocast_calls
    assert all(call["device_type"] == "cpu" and call["enabled"] is False
               for call in recorder.autocast_calls)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_cuda_fit_uses_amp_and_serves_on_cpu(data, tmp_path: Path) -> None:
    X_train, y_train, X_valid, y_valid = data
    fit = fit_mlp(mlp_params(device="auto"), 0, X_train, y_train, X_valid, y_valid, tmp_path)
    assert fit.details["device"] == "cuda" and fit.details["amp"] is True
    assert all(p.device.type == "cpu" for p in fit.estimator.module.parameters())
    restored = pickle.loads(pickle.dumps(fit.estimator))
    assert valid_metrics(y_valid, restored.predict_proba(X_valid)[:, 1])["roc_auc"] > 0.8


def test_undoing_the_graph_warm_up_gives_a_fresh_adamw_start() -> None:
    """cuda_graph._restore: weights back, AdamW's step count and moments zeroed; the next step
    must then equal the first step of an untouched model and optimizer (on CPU: no capture)."""
    torch.manual_seed(0)
    warmed, fresh = build_mlp(5, [4], 0.0), build_mlp(5, [4], 0.0)
    fresh.load_state_dict(warmed.state_dict())
    saved = [t.clone() for t in warmed.state_dict().values()]
    X, y = torch.randn(8, 5), torch.randn(8)

    def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(X).squeeze(1), y).backward()
        optimizer.step()

    warmed_opt = torch.optim.AdamW(warmed.parameters(), lr=0.1)
    for _ in range(3):
        step(warmed, warmed_opt)
    cuda_graph._restore(warmed, warmed_opt, saved)
    step(warmed, warmed_opt)
    step(fresh, torch.optim.AdamW(fresh.parameters(), lr=0.1))
    for after_restore, after_fresh in zip(warmed.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(after_restore, after_fresh)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_step_trains_like_the_eager_step(data, tmp_path: Path) -> None:
    """The replayed graph is the same training: same rows, order and seed as the eager loop,
    so the valid scores agree closely (dropout's random draws differ under capture)."""
    X_train, y_train, X_valid, y_valid = data
    params = mlp_params(device="cuda", batch_size=48)  # 400 rows: a short last batch too
    graphed = fit_mlp(params, 0, X_train, y_train, X_valid, y_valid, tmp_path / "graph")
    eager = fit_mlp(params.model_copy(update={"cuda_graph": False}), 0, X_train, y_train,
                    X_valid, y_valid, tmp_path / "eager")
    assert graphed.details["cuda_graph"] is True and eager.details["cuda_graph"] is False
    scores = [valid_metrics(y_valid, fit.estimator.predict_proba(X_valid)[:, 1])["roc_auc"]
              for fit in (graphed, eager)]
    assert scores[0] > 0.8 and abs(scores[0] - scores[1]) < 0.03


class _Stream:
    def wait_stream(self, _other: object) -> None:
        pass


class _Graph:
    made: list[_Graph] = []  # every stand-in graph, to count its replays

    def __init__(self) -> None:
        self.replays = 0
        _Graph.made.append(self)

    def replay(self) -> None:
        self.replays += 1


def _cuda_stand_ins(monkeypatch: pytest.MonkeyPatch, graph: object) -> None:
    """torch.cuda's streams and graph capture on a CPU; `graph` stands for torch.cuda.graph."""
    monkeypatch.setattr(torch.cuda, "Stream", _Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", _Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda _s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)


def test_a_refused_graph_capture_stops_with_one_line_naming_the_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a GPU says when a capture is refused, on a CPU: torch.cuda's stream and graph
    stand-ins, the capture raising as a driver does."""

    @contextlib.contextmanager
    def refused(*_args: object, **_kwargs: object) -> Iterator[None]:
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
        yield

    _cuda_stand_ins(monkeypatch, refused)
    model = build_mlp(3, [4], 0.0)
    optimizer = torch.optim.AdamW(model.parameters())
    steps: list[int] = []
    with pytest.raises(ConfigError) as caught:
        cuda_graph.capture_step(lambda *_t: steps.append(1), (torch.zeros(2, 3),), model,
                                optimizer, "train.mlp.cuda_graph")
    message = str(caught.value)
    assert "\n" not in message and steps == [1] * cuda_graph.WARMUP_STEPS
    assert message.startswith("train.mlp.cuda_graph: the training step could not be captured")
    assert "operation not permitted when stream is capturing" in message
    assert message.endswith("set train.mlp.cuda_graph to false to train without one")


def test_a_captured_step_replays_full_batches_and_steps_a_short_one_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cuda_graph.replaying on a CPU: a batch of the captured size is copied into the graph's
    inputs and replayed; a shorter one goes to the step itself."""
    _cuda_stand_ins(monkeypatch, lambda *_a, **_k: contextlib.nullcontext())
    model = build_mlp(3, [4], 0.0).eval()
    seen: list[int] = []
    run = cuda_graph.replaying(lambda X, _y: seen.append(len(X)),
                               (torch.zeros(4, 3), torch.zeros(4)), model,
                               torch.optim.AdamW(model.parameters()), "train.mlp.cuda_graph")
    assert model.training  # captured as the step runs: in training mode
    warm_and_capture = [4] * (cuda_graph.WARMUP_STEPS + 1)
    assert seen == warm_and_capture
    run(torch.ones(4, 3), torch.ones(4))
    assert seen == warm_and_capture and _Graph.made[-1].replays == 1
    run(torch.ones(2, 3), torch.ones(2))
    assert seen == [*warm_and_capture, 2] and _Graph.made[-1].replays == 1


def test_a_replay_copies_the_batch_into_the_tensors_the_graph_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cuda_stand_ins(monkeypatch, lambda *_a, **_k: contextlib.nullcontext())
    model = build_mlp(3, [4], 0.0)
    first = (torch.zeros(4, 3), torch.zeros(4))
    graphed = cuda_graph.capture_step(lambda *_t: None, first, model,
                                      torch.optim.AdamW(model.parameters()), "setting")
    batch = (torch.arange(12.0).reshape(4, 3), torch.ones(4))
    cuda_graph.replay(graphed, batch)
    assert all(torch.equal(a, b) for a, b in zip(graphed.inputs, batch, strict=True))
    assert graphed.inputs[0] is not batch[0] and torch.equal(first[0], torch.zeros(4, 3))
