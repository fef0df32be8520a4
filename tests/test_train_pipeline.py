"""End-to-end tests of the training toolkit on a tiny in-memory domain-shift dataset (24^3 volumes)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from toy_cache import toy_cache  # noqa: E402

from flairqc_app.config import GRID_SHAPE, TASKS  # noqa: E402
from flairqc_app.grid import resize_to  # noqa: E402
from flairqc_app.train import cli, loop, schedules  # noqa: E402
from flairqc_app.train import settings as settings_mod  # noqa: E402
from flairqc_app.train.cache import CacheRecipe, VolumeCache  # noqa: E402
from flairqc_app.train.ensemble import CombinedProbability, build, load_trained  # noqa: E402
from flairqc_app.train.export import export_run  # noqa: E402
from flairqc_app.train.loop import make_streams, train_step  # noqa: E402
from flairqc_app.train.methods import METHODS  # noqa: E402
from flairqc_app.train.metrics import best_threshold  # noqa: E402
from flairqc_app.train.runner import fold_pools, load_fold_model, load_selected, train_run  # noqa: E402

TINY_MODEL = {"input_shape": [24, 24, 24], "channels": [4, 8, 8], "hidden": [16, 8], "dropout": 0.0}


def tiny(**changes) -> settings_mod.TrainSettings:
    values = {
        "task": "noise_moderate",
        "method": "ssda",
        "epochs": 4,
        "pretrain_epochs": 2,
        "folds": 3,
        "batch_size": 4,
        "lr0": 3e-3,
        "seed": 0,
        "device": "cpu",
        "model": TINY_MODEL,
    } | changes
    return settings_mod.from_dict(values)


def curves(run_dir, fold=0):
    with open(run_dir / f"fold-{fold}" / "curves.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return toy_cache(
        tmp_path_factory.mktemp("cache"), n_source=40, n_target_labelled=30, n_unlabelled=30, seed=0
    )


class RecordingCache:
    """A cache that records the keys of each batch it serves."""

    def __init__(self, inner: VolumeCache):
        self.inner, self.requests = inner, []

    def batch(self, keys):
        self.requests.append(list(keys))
        return self.inner.batch(keys)


def test_each_iteration_draws_the_three_streams(cache):
    s = tiny()
    pools = fold_pools(s, cache, 0)
    net = loop.build_network(s)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    streams = make_streams(METHODS["ssda"], pools, 4, [0, 0, 1])
    assert list(streams) == ["source", "target", "unlabelled"]
    recorder = RecordingCache(cache)
    iterations = loop.iterations_per_epoch(METHODS["ssda"], pools, 4)
    assert iterations == int(np.ceil(len(pools.source) / 4))  # an epoch = one pass over the labelled T1w
    for _ in range(iterations):
        stats = train_step(net, optimizer, METHODS["ssda"], streams, recorder, torch.device("cpu"), 0.5)
    assert len(recorder.requests) == 3 * iterations
    for i in range(iterations):
        source, target, unlabelled = recorder.requests[3 * i : 3 * i + 3]
        assert len(source) == len(target) == len(unlabelled) == 4
        assert set(source) <= set(pools.source.keys)
        assert set(target) <= set(pools.target.keys)
        assert set(unlabelled) <= set(pools.unlabelled.keys)
    # the small labelled FLAIR pool gets as many draws as the T1w pool, so it is cycled (oversampled)
    target_draws = [k for keys in recorder.requests[1::3] for k in keys]
    assert len(pools.target) < len(pools.source) and len(target_draws) == 4 * iterations
    assert set(target_draws) == set(pools.target.keys) and max(map(target_draws.count, target_draws)) >= 2
    assert {"loss_source", "loss_target", "loss_domain", "domain_accuracy", "loss"} <= set(stats)
    only = make_streams(METHODS["target-only"], pools, 4, [0])
    assert list(only) == ["target"]
    assert list(make_streams(METHODS["source-only"], pools, 4, [0])) == ["source"]


def test_pretraining_then_adversarial_training_improves_target_validation_loss(cache, tmp_path):
    s = tiny(epochs=6, pretrain_epochs=3)
    selection = train_run(s, cache.root, tmp_path / "run", folds=[0])
    rows = curves(tmp_path / "run")
    assert [r["phase"] for r in rows] == ["init"] + ["pretrain"] * 3 + ["train"] * 6
    assert all(
        float(r["lambda"]) == 0.0 and r["loss_domain"] == "n/a" for r in rows if r["phase"] == "pretrain"
    )
    per_epoch = int(rows[-1]["iterations"]) // 6
    for r in rows[4:]:  # lambda and lr at the epoch's last iteration, on the true progress p
        p = schedules.progress(int(r["iterations"]) - 1, 6 * per_epoch)
        assert float(r["lambda"]) == pytest.approx(schedules.grl_lambda(p), rel=1e-4)
        assert float(r["lr"]) == pytest.approx(schedules.learning_rate(p, 3e-3), rel=1e-4)
        assert r["loss_domain"] != "n/a"
    initial = float(rows[0]["val_loss"])
    assert selection["val_loss"] < initial - 0.05
    best = min(float(r["val_loss"]) for r in rows if r["phase"] == "train")
    assert selection["val_loss"] == pytest.approx(best, rel=1e-5)
    assert 0.0 <= selection["threshold"] <= 1.0 and selection["data_sha256"]


def test_deterministic_and_resumable(cache, tmp_path, monkeypatch):
    s = tiny(method="dann", epochs=3, pretrain_epochs=1, augment=("flip", "fov_cut"))
    train_run(s, cache.root, tmp_path / "a", folds=[0])
    train_run(s, cache.root, tmp_path / "b", folds=[0])
    a = torch.load(tmp_path / "a" / "fold-0" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "fold-0" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])

    calls = {"n": 0}
    original = loop._write_curves

    def interrupt_after_two_epochs(path, history):
        original(path, history)
        calls["n"] += 1
        if calls["n"] == 2:  # pretrain epoch 1, train epoch 1: then "killed"
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_write_curves", interrupt_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train_run(s, cache.root, tmp_path / "c", folds=[0])
    monkeypatch.setattr(loop, "_write_curves", original)
    train_run(s, cache.root, tmp_path / "c", folds=[0], resume=True)
    c = torch.load(tmp_path / "c" / "fold-0" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])
    assert [r["val_loss"] for r in curves(tmp_path / "a")] == [r["val_loss"] for r in curves(tmp_path / "c")]


@pytest.fixture(scope="module")
def models_dir(cache, tmp_path_factory):
    """One tiny target-only model per BIDS-App task, exported into one models directory."""
    root = tmp_path_factory.mktemp("models")
    for task in TASKS:
        run = root / "runs" / task
        train_run(tiny(task=task, method="target-only", epochs=1), cache.root, run, folds=[0])
        export_run(run, root / "models", name="test-models")
    return root


def test_onnx_export_matches_torch(models_dir, cache):
    manifest = json.loads((models_dir / "models" / "models.json").read_text())
    for task in TASKS:
        entry = manifest["models"][task]
        assert entry["provenance"]["onnx_check"]["max_abs_difference"] <= 1e-4
        model = load_selected(models_dir / "runs" / task, torch.device("cpu")).model
        x = cache.batch(list(fold_pools(tiny(task=task), cache, 0).test.keys[:3]))
        session = ort.InferenceSession(str(models_dir / "models" / entry["file"]))
        onnx_out = session.run(["logits"], {"image": x})[0]  # batch of 3: the batch axis is dynamic
        with torch.no_grad():
            torch_out = model(torch.from_numpy(x)).numpy()
        assert onnx_out.shape == (3, 2)
        assert np.max(np.abs(onnx_out - torch_out)) <= 1e-4


def test_a_brain_windowed_model_ignores_the_head_and_exports_its_window(cache, tmp_path):
    """input_region = brain: the network, trained, reloaded and as ONNX, reads the brain + margin only."""
    from flairqc_app.train.template_grid import BRAIN_WINDOW_MARGIN_MM, template_brain

    run = tmp_path / "run"
    train_run(
        tiny(
            task="motion_moderate",
            method="target-only",
            epochs=1,
            model=TINY_MODEL | {"input_region": "brain"},
        ),
        cache.root,
        run,
        folds=[0],
    )
    export_run(run, tmp_path / "models")
    model = load_selected(run, torch.device("cpu")).model
    window = template_brain((24, 24, 24), BRAIN_WINDOW_MARGIN_MM)
    assert np.array_equal(model.features.window.mask[0, 0].numpy() > 0, window)  # saved with the weights
    assert window[template_brain((24, 24, 24))].all() and 0.2 < window.mean() < 0.6  # brain kept, head cut
    session = ort.InferenceSession(str(tmp_path / "models" / "motion_moderate.onnx"))
    x = cache.batch(list(fold_pools(tiny(), cache, 0).test.keys[:2]))
    rng = np.random.default_rng(0)
    new_head = np.where(window, x, rng.random(x.shape, dtype=np.float32))
    new_brain = np.where(window, rng.random(x.shape, dtype=np.float32), x)
    logits = [session.run(["logits"], {"image": v})[0] for v in (x, new_head, new_brain)]
    assert np.array_equal(logits[0], logits[1])
    assert np.max(np.abs(logits[0] - logits[2])) > 1e-3


def test_manifest_fields_follow_the_documented_format(models_dir):
    from flairqc_app.manifest import sha256_of

    manifest = json.loads((models_dir / "models" / "models.json").read_text())
    assert manifest["format_version"] == 1 and manifest["name"] == "test-models"
    assert set(manifest["models"]) == set(TASKS)
    for task, entry in manifest["models"].items():
        assert entry["file"] == f"{task}.onnx"
        assert entry["sha256"] == sha256_of(models_dir / "models" / entry["file"])
        assert (entry["input_name"], entry["output_name"], entry["output_type"]) == (
            "image",
            "logits",
            "logits",
        )
        assert entry["input_shape"] == [1, 1, 24, 24, 24] and entry["positive_index"] == 1
        assert entry["normalisation"] == "clip_p2_p98_minmax" and entry["space"] == "MNI152NLin2009aSym"
        assert 0.0 <= entry["threshold"] <= 1.0
        prov = entry["provenance"]
        assert prov["trained_by"] == "flairqc-train" and prov["method"] == "target-only"
        assert len(prov["data_sha256"]) == 64 and prov["settings"]["task"] == task and prov["code_version"]


def test_exported_models_are_accepted_by_the_bids_app(models_dir):
    infer = pytest.importorskip("flairqc_app.infer")
    model_set = infer.load_models(models_dir / "models", device="cpu")
    rng = np.random.default_rng(0)
    volume = rng.random(GRID_SHAPE, dtype=np.float32)
    probabilities = model_set.predict(volume)
    assert set(probabilities) == set(TASKS)
    small = resize_to(volume, (24, 24, 24))[None, None]
    for task in TASKS:
        model = load_selected(models_dir / "runs" / task, torch.device("cpu")).model
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(small)), 1)[0, 1].item()
        assert probabilities[task] == pytest.approx(expected, abs=1e-5)


def test_an_exported_model_set_is_evaluated_as_its_runs(models_dir, cache, tmp_path):
    """The ONNX models, with their manifest's thresholds, score the cache's test split as their torch runs do."""
    from flairqc_app.train.evaluate import evaluate_models, evaluate_runs

    def scores(rows):  # NaN (no positive in the split) as None, so that equal rows compare equal
        return {
            r["task"]: tuple(
                None if v != v else v
                for v in (r["n"], r["n_positive"], r["balanced_accuracy"], r["sensitivity"], r["threshold"])
            )
            for r in rows
        }

    by_runs = scores(
        evaluate_runs(sorted((models_dir / "runs").iterdir()), tmp_path / "runs", "a", resamples=50)
    )
    by_models = scores(
        evaluate_models(models_dir / "models", cache.root, tmp_path / "onnx", "a", resamples=50)
    )
    assert set(TASKS) <= set(by_models) and by_models == by_runs
    assert (
        cli.main(
            [
                "evaluate",
                "--models-dir",
                str(models_dir / "models"),
                "--cache",
                str(cache.root),
                "--name",
                "a",
                "--out",
                str(tmp_path / "cli"),
                "--resamples",
                "50",
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit):
        cli.main(
            ["evaluate", "--models-dir", str(models_dir / "models"), "--name", "a", "--out", str(tmp_path)]
        )


def test_a_model_set_is_not_evaluated_on_a_cache_of_another_shape(models_dir, tmp_path):
    from flairqc_app.train.evaluate import evaluate_models

    other = toy_cache(tmp_path / "cache16", n_source=4, n_target_labelled=6, n_unlabelled=0, size=16, seed=1)
    with pytest.raises(ValueError, match=r"takes \(24, 24, 24\).*cache16 holds \(16, 16, 16\)"):
        evaluate_models(models_dir / "models", other.root, tmp_path / "out", "a", resamples=10)
    assert not (tmp_path / "out").exists()  # nothing written before the refusal


def test_cli_train_evaluate_compare(cache, tmp_path):
    common = [
        "--cache",
        str(cache.root),
        "--task",
        "noise_moderate",
        "--epochs",
        "2",
        "--pretrain-epochs",
        "1",
        "--folds",
        "3",
        "--only-fold",
        "0",
        "--batch-size",
        "4",
        "--channels",
        "4",
        "8",
        "8",
        "--hidden",
        "16",
        "8",
        "--device",
        "cpu",
    ]
    assert (
        cli.main(
            ["train", "--run", str(tmp_path / "ssda"), "--method", "ssda", "--augment", "flip,outside_gain"]
            + common
        )
        == 0
    )
    assert json.loads((tmp_path / "ssda" / "settings.json").read_text())["augment"] == [
        "flip",
        "outside_gain",
    ]
    assert cli.main(["train", "--run", str(tmp_path / "src"), "--method", "source-only"] + common) == 0
    for name in ("ssda", "src"):
        assert (
            cli.main(
                [
                    "evaluate",
                    "--runs",
                    str(tmp_path / name),
                    "--name",
                    name,
                    "--out",
                    str(tmp_path / f"eval-{name}"),
                    "--resamples",
                    "100",
                ]
            )
            == 0
        )
    assert (
        cli.main(
            [
                "compare",
                str(tmp_path / "eval-ssda"),
                str(tmp_path / "eval-src"),
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    with open(tmp_path / "eval-ssda" / "metrics.tsv", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle, delimiter="\t"))
    assert row["task"] == "noise_moderate"
    assert float(row["ci_low"]) <= float(row["balanced_accuracy"]) <= float(row["ci_high"])
    assert int(row["n"]) == len(fold_pools(tiny(), cache, 0).test)
    page = (tmp_path / "eval-ssda" / "report.html").read_text()
    assert "plotly" in page.lower() and "Training curves" in page and "val_ba" in page
    with open(tmp_path / "cmp" / "comparison.tsv", encoding="utf-8") as handle:
        (cmp,) = list(csv.DictReader(handle, delimiter="\t"))
    assert 0.0 <= float(cmp["p_value"]) <= 1.0 and cmp["a"] == "ssda" and cmp["b"] == "src"


def test_prepare_reads_bids_and_caches_once(tmp_path, monkeypatch):
    import nibabel as nib

    from flairqc_app.train import cache as cache_mod

    def write(root, rel):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        nib.save(
            nib.Nifti1Image(np.random.default_rng(len(rel)).random((8, 8, 8)).astype(np.float32), np.eye(4)),
            str(root / rel),
        )

    header = (
        "filename\tparticipant_id\tsession_id\trun_id\tacq_id\tmodality\tstraight_reject\treject_reason"
        "\tmotion\tnoise\tcontrast\n"
    )
    src, tgt = tmp_path / "src", tmp_path / "tgt"
    lines = []
    for i in range(6):
        write(src, f"sub-{i}/anat/sub-{i}_T1w.nii.gz")
        lines.append(f"sub-{i}/anat/sub-{i}_T1w.nii.gz\tsub-{i}\tn/a\tn/a\tn/a\tT1w\t0\tn/a\t{i % 3}\t0\t0\n")
    (src / "labels.tsv").write_text(header + "".join(lines))
    lines = []
    for i in range(6):
        write(tgt, f"sub-{i}/ses-1/anat/sub-{i}_ses-1_FLAIR.nii.gz")
        if i < 4:
            lines.append(
                f"sub-{i}/ses-1/anat/sub-{i}_ses-1_FLAIR.nii.gz\tsub-{i}\tses-1\tn/a\tn/a\tFLAIR\t0\tn/a"
                f"\t0\t{i % 3}\t0\n"
            )
    (tgt / "labels.tsv").write_text(header + "".join(lines))
    calls = []

    def fake(path, template, recipe):
        calls.append((path.name, template.name))
        return np.full(GRID_SHAPE[:1] + (4, 4), 0.5, np.float32), 0.9, 0.0

    monkeypatch.setattr(cache_mod, "_preprocess_one", fake)
    recipe = CacheRecipe((6, 6, 6), "fast", test_fraction=0.0)
    samples = cache_mod.prepare(src, tgt, tmp_path / "cache", recipe)
    assert len(samples) == 12 and len(calls) == 12
    assert all("T1w" in t for n, t in calls if "T1w" in n) and all(
        "FLAIR" in t for n, t in calls if "FLAIR" in n
    )
    target = [s for s in samples if s.domain == "target"]
    assert sum(s.labelled for s in target) == 4 and sum(not s.labelled for s in target) == 2
    assert {s.group for s in target} == {f"target:sub-{i}" for i in range(6)}
    assert VolumeCache(tmp_path / "cache").load(samples[0].key).shape == (6, 6, 6)
    cache_mod.prepare(src, tgt, tmp_path / "cache", recipe)
    assert len(calls) == 12  # nothing is preprocessed twice
    with pytest.raises(ValueError, match="recipe"):
        cache_mod.prepare(src, tgt, tmp_path / "cache", CacheRecipe((6, 6, 6), "paper"))
    # a site's held-out validation participants (through the command line, as a site gives them): all their
    # images leave training, their labelled FLAIR validates; the table on disk says so
    assert (
        cli.main(
            [
                "prepare",
                "--source",
                str(src),
                "--target",
                str(tgt),
                "--cache",
                str(tmp_path / "cache"),
                "--input-shape",
                "6",
                "6",
                "6",
                "--recipe",
                "fast",
                "--test-fraction",
                "0.5",
                "--validation-participants",
                "sub-1,sub-3",
            ]
        )
        == 0
    )
    held = VolumeCache(tmp_path / "cache").read_samples()
    assert len(calls) == 12 and len(held) == 12
    split = {(s.domain, s.participant_id): s.split for s in held}
    assert split[("target", "sub-1")] == split[("target", "sub-3")] == "validation"
    assert split[("source", "sub-1")] in {"trainval", "test"}  # another group: the datasets hold other people
    others = [s for s in held if s.split != "validation"]
    assert len(others) == 10 and {s.split for s in others} == {"trainval", "test"}
    with pytest.raises(ValueError, match="sub-4, sub-9"):  # sub-4's FLAIR is unlabelled, sub-9 is not there
        held_out = frozenset({"sub-1", "sub-4", "sub-9"})
        cache_mod.prepare(
            src,
            tgt,
            tmp_path / "other-cache",
            CacheRecipe((6, 6, 6), "fast", validation_participants=held_out),
        )
    assert len(calls) == 12  # refused before any image is preprocessed
    table = tmp_path / "cache" / "samples.tsv"
    table.write_text(table.read_text().replace("\tvalidation\t", "\tvalidate\t", 1))
    unknown_split = r"samples.tsv: sub-\d/ses-1/anat/sub-\d_ses-1_FLAIR.nii.gz has split 'validate'"
    with pytest.raises(ValueError, match=unknown_split):
        VolumeCache(tmp_path / "cache").read_samples()


def quick(**changes) -> settings_mod.TrainSettings:
    """One target-only epoch: enough to make members that differ."""
    return tiny(**({"method": "target-only", "epochs": 1, "pretrain_epochs": 0} | changes))


@pytest.fixture(scope="module")
def validated_cache(tmp_path_factory):
    """A toy cache with a validation split: labelled FLAIR held out of every fold's training."""
    return toy_cache(
        tmp_path_factory.mktemp("validated"),
        n_source=6,
        n_target_labelled=30,
        n_unlabelled=6,
        n_validation=12,
        seed=3,
    )


@pytest.fixture(scope="module")
def runs(validated_cache, tmp_path_factory):
    """Run a: the three folds of seed 0; run b: fold 0 of seed 1 (other folds, other initial weights)."""
    root = tmp_path_factory.mktemp("runs")
    train_run(quick(), validated_cache.root, root / "a")
    train_run(quick(seed=1), validated_cache.root, root / "b", folds=[0])
    return root


def member_probabilities(members, cache, keys):
    x = torch.from_numpy(cache.batch(list(keys)))
    with torch.no_grad():
        return np.stack(
            [
                torch.softmax(load_fold_model(run, fold, torch.device("cpu"))(x), 1).numpy()
                for run, fold in members
            ]
        )


def test_an_ensemble_averages_its_members_with_a_threshold_from_images_none_trained_on(
    runs, validated_cache, tmp_path
):
    cache = validated_cache
    record = build([runs / "a", runs / "b"], tmp_path / "ens", torch.device("cpu"))
    members = [(runs / "a", 0), (runs / "a", 1), (runs / "a", 2), (runs / "b", 0)]
    assert [(m["run"], m["fold"]) for m in record["members"]] == [(str(r.resolve()), f) for r, f in members]
    assert record["settings"]["task"] == "noise_moderate" and "seed" not in record["settings"]
    assert [m["settings"]["seed"] for m in record["members"]] == [0, 0, 0, 1]

    trained = load_trained(tmp_path / "ens", torch.device("cpu"))
    validation_split = sorted(s.key for s in cache.read_samples() if s.split == "validation")
    assert sorted(trained.validation.keys) == validation_split  # the three folds of run a leave only these
    for run, fold in members:
        pools = fold_pools(quick(seed=1 if run.name == "b" else 0), cache, fold)
        assert not set(trained.validation.keys) & set(
            pools.target.keys + pools.source.keys + pools.unlabelled.keys
        )

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
    # the members differ: the mean is not one of them
    assert np.abs(singles - singles.mean(axis=0)).max() > 1e-3


def test_an_ensemble_is_evaluated_and_exported_as_one_model(runs, validated_cache, tmp_path):
    from flairqc_app.infer import load_models
    from flairqc_app.train.evaluate import evaluate_models, evaluate_runs

    cache = validated_cache

    assert (
        cli.main(["ensemble", "--runs", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "ens")])
        == 0
    )
    others = [task for task in TASKS if task != "noise_moderate"]  # the BIDS-App needs a model for every task
    for task in others:
        train_run(quick(task=task), cache.root, tmp_path / task, folds=[0])
    assert (
        cli.main(
            [
                "export",
                "--runs",
                str(tmp_path / "ens"),
                *[str(tmp_path / t) for t in others],
                "--models-dir",
                str(tmp_path / "models"),
            ]
        )
        == 0
    )
    entry = json.loads((tmp_path / "models" / "models.json").read_text())["models"]["noise_moderate"]
    ensemble = entry["provenance"]["ensemble"]
    assert [(m["fold"], m["settings"]["seed"]) for m in ensemble["members"]] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (0, 1),
    ]
    assert ensemble["combine"] == "mean"
    assert entry["provenance"]["onnx_check"]["max_abs_difference"] <= 1e-4

    volume = np.random.default_rng(0).random(GRID_SHAPE, dtype=np.float32)  # as the BIDS-App preprocesses
    probability = load_models(tmp_path / "models", "cpu").predict(volume)["noise_moderate"]
    small = torch.from_numpy(resize_to(volume, (24, 24, 24))[None, None])
    members = [(runs / "a", 0), (runs / "a", 1), (runs / "a", 2), (runs / "b", 0)]
    with torch.no_grad():
        singles = [
            torch.softmax(load_fold_model(r, f, torch.device("cpu"))(small), 1)[0, 1].item()
            for r, f in members
        ]
    assert probability == pytest.approx(np.mean(singles), abs=1e-5)

    def scores(rows):  # NaN (no positive in the split) as None, so that equal rows compare equal
        return {
            r["task"]: tuple(None if v != v else v for v in (r["n"], r["balanced_accuracy"], r["threshold"]))
            for r in rows
        }

    by_runs = scores(
        evaluate_runs(
            [tmp_path / "ens", *[tmp_path / t for t in others]], tmp_path / "eval-runs", "ens", resamples=50
        )
    )
    by_models = scores(
        evaluate_models(tmp_path / "models", cache.root, tmp_path / "eval-onnx", "ens", resamples=50)
    )
    assert set(TASKS) <= set(by_runs) and by_models == by_runs
    assert by_runs["noise_moderate"][2] == entry["threshold"]


class FixedReading(torch.nn.Module):
    """A member that reads every image with the same class-1 probability."""

    def __init__(self, p: float):
        super().__init__()
        self.logits = torch.log(torch.tensor([[1 - p, p]]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(image), 2)


@pytest.mark.parametrize(
    "readings, mean, median", [((0.02, 0.03, 0.04, 0.99), 0.27, 0.035), ((0.02, 0.04, 0.99), 0.35, 0.04)]
)
def test_the_median_of_an_ensemble_does_not_follow_one_member(readings, mean, median):
    image = torch.zeros(2, 1, 4, 4, 4)
    for combine, expected in (("mean", mean), ("median", median)):
        model = CombinedProbability([FixedReading(p) for p in readings], combine)
        with torch.no_grad():
            probabilities = torch.softmax(model(image), 1).numpy()
        np.testing.assert_allclose(probabilities, [[1 - expected, expected]] * 2, atol=1e-6)


def test_a_median_ensemble_is_chosen_scored_and_exported_as_its_median(runs, validated_cache, tmp_path):
    cache = validated_cache
    assert (
        cli.main(
            [
                "ensemble",
                "--runs",
                str(runs / "a"),
                str(runs / "b"),
                "--out",
                str(tmp_path / "ens"),
                "--combine",
                "median",
            ]
        )
        == 0
    )
    trained = load_trained(tmp_path / "ens", torch.device("cpu"))
    assert trained.record["combine"] == "median"
    members = [(runs / "a", 0), (runs / "a", 1), (runs / "a", 2), (runs / "b", 0)]
    median = np.median(member_probabilities(members, cache, trained.validation.keys), axis=0)  # 4: middle two
    expected_threshold, _ = best_threshold(np.asarray(trained.validation.labels), median[:, 1])
    assert trained.record["threshold"] == pytest.approx(expected_threshold, abs=1e-6)

    keys = trained.test.keys[:5]
    singles = member_probabilities(members, cache, keys)
    with torch.no_grad():
        ensemble = torch.softmax(trained.model(torch.from_numpy(cache.batch(list(keys)))), 1).numpy()
    np.testing.assert_allclose(ensemble, np.median(singles, axis=0), atol=1e-6)
    # the median is not the mean here
    assert np.abs(np.median(singles, axis=0) - singles.mean(axis=0)).max() > 1e-4
    export_run(tmp_path / "ens", tmp_path / "models")  # the ONNX graph is checked against the torch model
    entry = json.loads((tmp_path / "models" / "models.json").read_text())["models"]["noise_moderate"]
    assert entry["provenance"]["onnx_check"]["max_abs_difference"] <= 1e-4
    assert entry["provenance"]["ensemble"]["combine"] == "median"  # the manifest says how the members combine
    with pytest.raises(ValueError, match="combine 'vote' is not one of mean, median"):
        build([runs / "a", runs / "b"], tmp_path / "vote", combine="vote")


def test_a_model_replaced_in_a_set_may_give_the_set_a_new_version(runs, tmp_path):
    models = tmp_path / "models"
    export_run(runs / "a", models, name="site-set")
    assert json.loads((models / "models.json").read_text())["version"] == "1.0.0"
    assert (
        cli.main(
            [
                "export",
                "--runs",
                str(runs / "b"),
                "--models-dir",
                str(models),
                "--manifest-version",
                "1.1.0",
                "--name",
                "ignored",
            ]
        )
        == 0
    )
    manifest = json.loads((models / "models.json").read_text())
    assert (manifest["name"], manifest["version"]) == ("site-set", "1.1.0")
    assert manifest["models"]["noise_moderate"]["provenance"]["settings"]["seed"] == 1  # run b's model now
    export_run(runs / "a", models)  # no version given: the set keeps its own
    assert json.loads((models / "models.json").read_text())["version"] == "1.1.0"


def test_an_exported_ensemble_of_brain_windowed_members_holds_its_mask_once(validated_cache, tmp_path):
    cache = validated_cache
    windowed = quick(task="motion_moderate", model=TINY_MODEL | {"input_region": "brain"})
    for seed in (0, 1):
        train_run(replace(windowed, seed=seed), cache.root, tmp_path / f"run-{seed}", folds=[0])
    build([tmp_path / "run-0", tmp_path / "run-1"], tmp_path / "ens", torch.device("cpu"))
    export_run(tmp_path / "ens", tmp_path / "models")
    graph = onnx.load(str(tmp_path / "models" / "motion_moderate.onnx")).graph
    masks = [
        t
        for t in list(graph.initializer) + [n.attribute[0].t for n in graph.node if n.op_type == "Constant"]
        if list(t.dims) == [1, 1, 24, 24, 24]
    ]
    assert len(masks) == 1


def test_an_ensemble_refuses_what_does_not_fit(runs, validated_cache, tmp_path):
    cache = validated_cache
    with pytest.raises(ValueError, match="at least two trained folds"):
        build([runs / "b"], tmp_path / "one")
    train_run(quick(task="motion_moderate"), cache.root, tmp_path / "motion", folds=[0])
    with pytest.raises(ValueError, match="share one task.*noise_moderate.*motion_moderate"):
        build([runs / "b", tmp_path / "motion"], tmp_path / "mixed")
    plain = toy_cache(tmp_path / "plain", n_source=4, n_target_labelled=18, n_unlabelled=0, size=24, seed=1)
    train_run(quick(), plain.root, tmp_path / "no-validation", folds=[0, 1])
    with pytest.raises(
        ValueError, match="no labelled FLAIR is held out of every member's training.*validation part"
    ):
        build([tmp_path / "no-validation"], tmp_path / "none")
    assert (
        not (tmp_path / "one").exists()
        and not (tmp_path / "mixed").exists()
        and not (tmp_path / "none").exists()
    )

    train_run(quick(seed=5), cache.root, tmp_path / "c", folds=[0])
    build([runs / "b", tmp_path / "c"], tmp_path / "ens")
    train_run(quick(seed=6), cache.root, tmp_path / "c", folds=[0])  # a member trained again
    with pytest.raises(ValueError, match="trained again after the ensemble was made"):
        load_trained(tmp_path / "ens")
