"""Ensembles of trained folds (flairqc_app/train/ensemble.py) on a tiny toy cache with a validation split."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from flairqc_app.config import GRID_SHAPE, TASKS  # noqa: E402
from flairqc_app.resample import resize_to  # noqa: E402
from flairqc_app.train import cli  # noqa: E402
from flairqc_app.train import settings as settings_mod  # noqa: E402
from flairqc_app.train.ensemble import build, load_trained  # noqa: E402
from flairqc_app.train.export import export_run  # noqa: E402
from flairqc_app.train.metrics import best_threshold  # noqa: E402
from flairqc_app.train.runner import fold_pools, load_fold_model, train_run  # noqa: E402
from flairqc_app.train.toy import toy_cache  # noqa: E402

TINY_MODEL = {"input_shape": [24, 24, 24], "channels": [4, 8, 8], "hidden": [16, 8], "dropout": 0.0}


def tiny(**changes) -> settings_mod.TrainSettings:
    values = {"task": "noise_moderate", "method": "target-only", "epochs": 1, "pretrain_epochs": 0, "folds": 3,
              "batch_size": 4, "lr0": 3e-3, "seed": 0, "device": "cpu", "model": TINY_MODEL} | changes
    return settings_mod.from_dict(values)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return toy_cache(tmp_path_factory.mktemp("cache"), n_source=6, n_target_labelled=30, n_unlabelled=6,
                     n_validation=12, seed=3)


@pytest.fixture(scope="module")
def runs(cache, tmp_path_factory):
    """Run a: the three folds of seed 0; run b: fold 0 of seed 1 (other folds, other initial weights)."""
    root = tmp_path_factory.mktemp("runs")
    train_run(tiny(), cache.root, root / "a")
    train_run(tiny(seed=1), cache.root, root / "b", folds=[0])
    return root


def member_probabilities(members, cache, keys):
    x = torch.from_numpy(cache.batch(list(keys)))
    with torch.no_grad():
        return np.stack([torch.softmax(load_fold_model(run, fold, torch.device("cpu"))(x), 1).numpy()
                         for run, fold in members])


def test_an_ensemble_averages_its_members_and_chooses_its_threshold_on_what_none_trained_on(runs, cache, tmp_path):
    record = build([runs / "a", runs / "b"], tmp_path / "ens", torch.device("cpu"))
    members = [(runs / "a", 0), (runs / "a", 1), (runs / "a", 2), (runs / "b", 0)]
    assert [(m["run"], m["fold"]) for m in record["members"]] == [(str(r.resolve()), f) for r, f in members]
    assert record["settings"]["task"] == "noise_moderate" and "seed" not in record["settings"]
    assert [m["settings"]["seed"] for m in record["members"]] == [0, 0, 0, 1]

    trained = load_trained(tmp_path / "ens", torch.device("cpu"))
    validation_split = sorted(s.key for s in cache.read_samples() if s.split == "validation")
    assert sorted(trained.validation.keys) == validation_split  # the three folds of run a leave only these
    for run, fold in members:
        pools = fold_pools(tiny(seed=1 if run.name == "b" else 0), cache, fold)
        assert not set(trained.validation.keys) & set(pools.target.keys + pools.source.keys + pools.unlabelled.keys)

    mean = member_probabilities(members, cache, trained.validation.keys).mean(axis=0)
    expected_threshold, expected_ba = best_threshold(np.asarray(trained.validation.labels), mean[:, 1])
    assert record["threshold"] == pytest.approx(expected_threshold, abs=1e-6)
    assert record["val_ba_at_threshold"] == pytest.approx(expected_ba)
    assert record["validation"] == {"n": 12, "n_positive": int(np.sum(trained.validation.labels))}

    keys = trained.test.keys[:5]
    with torch.no_grad():
        ensemble = torch.softmax(trained.model(torch.from_numpy(cache.batch(list(keys)))), 1).numpy()
    singles = member_probabilities(members, cache, keys)
    np.testing.assert_allclose(ensemble, singles.mean(axis=0), atol=1e-6)
    assert np.abs(singles - singles.mean(axis=0)).max() > 1e-3  # the members differ: the mean is not one of them


def test_an_ensemble_is_evaluated_and_exported_as_one_model(runs, cache, tmp_path):
    from flairqc_app.infer import load_models
    from flairqc_app.train.evaluate import evaluate_models, evaluate_runs

    assert cli.main(["ensemble", "--runs", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "ens")]) == 0
    others = [task for task in TASKS if task != "noise_moderate"]  # the BIDS-App needs a model for every task
    for task in others:
        train_run(tiny(task=task), cache.root, tmp_path / task, folds=[0])
    assert cli.main(["export", "--runs", str(tmp_path / "ens"), *[str(tmp_path / t) for t in others],
                     "--models-dir", str(tmp_path / "models")]) == 0
    entry = json.loads((tmp_path / "models" / "models.json").read_text())["models"]["noise_moderate"]
    ensemble = entry["provenance"]["ensemble"]
    assert [(m["fold"], m["settings"]["seed"]) for m in ensemble["members"]] == [(0, 0), (1, 0), (2, 0), (0, 1)]
    assert entry["provenance"]["onnx_check"]["max_abs_difference"] <= 1e-4

    volume = np.random.default_rng(0).random(GRID_SHAPE, dtype=np.float32)  # as the BIDS-App preprocesses
    probability = load_models(tmp_path / "models", "cpu").predict(volume)["noise_moderate"]
    small = torch.from_numpy(resize_to(volume, (24, 24, 24))[None, None])
    members = [(runs / "a", 0), (runs / "a", 1), (runs / "a", 2), (runs / "b", 0)]
    with torch.no_grad():
        singles = [torch.softmax(load_fold_model(r, f, torch.device("cpu"))(small), 1)[0, 1].item() for r, f in members]
    assert probability == pytest.approx(np.mean(singles), abs=1e-5)

    def scores(rows):  # NaN (no positive in the split) as None, so that equal rows compare equal
        return {r["task"]: tuple(None if v != v else v for v in (r["n"], r["balanced_accuracy"], r["threshold"]))
                for r in rows}

    by_runs = scores(evaluate_runs([tmp_path / "ens", *[tmp_path / t for t in others]], tmp_path / "eval-runs",
                                   "ens", resamples=50))
    by_models = scores(evaluate_models(tmp_path / "models", cache.root, tmp_path / "eval-onnx", "ens", resamples=50))
    assert set(TASKS) <= set(by_runs) and by_models == by_runs
    assert by_runs["noise_moderate"][2] == entry["threshold"]


def test_an_exported_ensemble_of_brain_windowed_members_holds_its_mask_once(cache, tmp_path):
    windowed = tiny(task="motion_moderate", model=TINY_MODEL | {"input_region": "brain"})
    for seed in (0, 1):
        train_run(replace(windowed, seed=seed), cache.root, tmp_path / f"run-{seed}", folds=[0])
    build([tmp_path / "run-0", tmp_path / "run-1"], tmp_path / "ens", torch.device("cpu"))
    export_run(tmp_path / "ens", tmp_path / "models")
    graph = onnx.load(str(tmp_path / "models" / "motion_moderate.onnx")).graph
    masks = [t for t in list(graph.initializer) + [n.attribute[0].t for n in graph.node if n.op_type == "Constant"]
             if list(t.dims) == [1, 1, 24, 24, 24]]
    assert len(masks) == 1


def test_an_ensemble_refuses_what_does_not_fit(runs, cache, tmp_path):
    with pytest.raises(ValueError, match="at least two trained folds"):
        build([runs / "b"], tmp_path / "one")
    train_run(tiny(task="motion_moderate"), cache.root, tmp_path / "motion", folds=[0])
    with pytest.raises(ValueError, match="share one task.*noise_moderate.*motion_moderate"):
        build([runs / "b", tmp_path / "motion"], tmp_path / "mixed")
    plain = toy_cache(tmp_path / "plain", n_source=4, n_target_labelled=18, n_unlabelled=0, size=24, seed=1)
    train_run(tiny(), plain.root, tmp_path / "no-validation", folds=[0, 1])
    with pytest.raises(ValueError, match="no labelled FLAIR is held out of every member's training.*validation part"):
        build([tmp_path / "no-validation"], tmp_path / "none")
    assert not (tmp_path / "one").exists() and not (tmp_path / "mixed").exists() and not (tmp_path / "none").exists()

    train_run(tiny(seed=5), cache.root, tmp_path / "c", folds=[0])
    build([runs / "b", tmp_path / "c"], tmp_path / "ens")
    train_run(tiny(seed=6), cache.root, tmp_path / "c", folds=[0])  # a member trained again
    with pytest.raises(ValueError, match="trained again after the ensemble was made"):
        load_trained(tmp_path / "ens")
