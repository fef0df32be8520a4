"""Evaluation as the paper reports it, on the held-out target test split: balanced accuracy with a 95%
bootstrap CI per task, the tiers recombined from the six artefact models (indirect) or predicted by one
model (direct), confusion matrices, and McNemar's test between two approaches (Bonferroni-corrected).

Outputs of `evaluate`: predictions.tsv, metrics.tsv, confusion.tsv and report.html in one directory;
`compare` reads two such directories and writes comparison.tsv and comparison.html.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flairqc_app import tsv
from flairqc_app.config import ARTEFACT_TASKS, ARTEFACTS
from flairqc_app.grade import artefact_grade, tier_from_grades
from flairqc_app.train import report
from flairqc_app.train.cache import Sample, VolumeCache
from flairqc_app.train.labels import TIER_TASK, tier
from flairqc_app.train.metrics import balanced_accuracy, bootstrap_ci, confusion_matrix, mcnemar
from flairqc_app.train.pools import test_pool

METRIC_COLUMNS = (
    "approach",
    "task",
    "n",
    "n_positive",
    "balanced_accuracy",
    "ci_low",
    "ci_high",
    "sensitivity",
    "specificity",
    "threshold",
)


@dataclass(frozen=True)
class Predictions:
    """Test-split decisions of one approach on one task (`probability`: positive class, NaN if derived)."""

    approach: str
    task: str
    keys: tuple[str, ...]
    labels: np.ndarray
    probability: np.ndarray
    prediction: np.ndarray
    threshold: float = float("nan")

    def by_key(self) -> dict[str, int]:
        return dict(zip(self.keys, self.prediction.tolist()))


def predict_run(run_dir: Path, approach: str) -> tuple[Predictions, Any]:
    """Predictions of a run's selected model (F + C_T), or of an ensemble, on its target test split, and the
    cache."""
    from flairqc_app.train.ensemble import load_trained  # torch only when runs are read
    from flairqc_app.train.loop import predict_logits, softmax

    trained = load_trained(run_dir)
    test = trained.test
    probs = softmax(
        predict_logits(trained.model, trained.cache, test.keys, trained.device, trained.batch_size)
    )
    labels = np.asarray(test.labels)
    if trained.task == TIER_TASK:
        return (
            Predictions(
                approach, TIER_TASK, test.keys, labels, np.full(len(labels), np.nan), probs.argmax(1)
            ),
            trained.cache,
        )
    threshold = float(trained.record["threshold"])
    positive = probs[:, 1]
    return Predictions(
        approach, trained.task, test.keys, labels, positive, (positive >= threshold).astype(int), threshold
    ), trained.cache


def tier_predictions(
    approach: str, by_task: dict[str, Predictions], true_tiers: dict[str, int]
) -> list[Predictions]:
    """tier 3 vs tiers 2-1 and tier 2 vs tier 1 from recombined grades (indirect) or a direct tier model.

    Images are those with a true tier (non-rejected, all grades labelled) and a prediction for every model
    used. Tier 2 vs tier 1 is scored on true tiers 1 and 2; a predicted tier 2 or 3 counts as positive.
    """
    if all(t in by_task for t in ARTEFACT_TASKS):
        maps = {t: dict(zip(by_task[t].keys, by_task[t].probability.tolist())) for t in ARTEFACT_TASKS}
        keys = sorted(set(true_tiers).intersection(*[set(m) for m in maps.values()]))
        predicted = {
            k: tier_from_grades(
                {
                    a: artefact_grade(
                        maps[f"{a}_moderate"][k],
                        maps[f"{a}_severe"][k],
                        by_task[f"{a}_moderate"].threshold,
                        by_task[f"{a}_severe"].threshold,
                    )
                    for a in ARTEFACTS
                }
            )
            for k in keys
        }
    elif TIER_TASK in by_task:
        predicted = {k: p + 1 for k, p in by_task[TIER_TASK].by_key().items() if k in true_tiers}
    else:
        return []
    out = []
    for name, keep, positive in (
        ("tier3_vs_tier21", {1, 2, 3}, lambda t: t == 3),
        ("tier2_vs_tier1", {1, 2}, lambda t: t >= 2),
    ):
        keys = tuple(k for k in sorted(predicted) if true_tiers[k] in keep)
        y = np.asarray([int(positive(true_tiers[k])) for k in keys], dtype=int)
        pred = np.asarray([int(positive(predicted[k])) for k in keys], dtype=int)
        out.append(Predictions(approach, name, keys, y, np.full(len(keys), np.nan), pred))
    return out


def metric_row(p: Predictions, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """BA with its bootstrap CI, plus sensitivity and specificity for binary tasks."""
    low, high = bootstrap_ci(p.labels, p.prediction, resamples, seed)
    row: dict[str, Any] = {
        "approach": p.approach,
        "task": p.task,
        "n": len(p.keys),
        "n_positive": int(np.sum(p.labels > 0)),
        "balanced_accuracy": balanced_accuracy(p.labels, p.prediction),
        "ci_low": low,
        "ci_high": high,
        "threshold": p.threshold,
    }
    if p.task != TIER_TASK:
        pos, neg = p.labels == 1, p.labels == 0
        row["sensitivity"] = float(np.mean(p.prediction[pos] == 1)) if pos.any() else float("nan")
        row["specificity"] = float(np.mean(p.prediction[neg] == 0)) if neg.any() else float("nan")
    return row


def write_tsv(path: Path, columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> None:
    tsv.write_rows(path, columns, rows, quoted=True)


def read_tsv(path: Path) -> list[dict[str, str]]:
    return tsv.read_rows(path, quoted=True)


def evaluate_predictions(
    all_predictions: list[Predictions],
    out_dir: Path,
    title: str,
    curves: dict[str, list[dict[str, str]]] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Write predictions.tsv, metrics.tsv, confusion.tsv and report.html; return the metric rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = [metric_row(p, resamples, seed) for p in all_predictions]
    confusions = {
        f"{p.approach} {p.task}": confusion_matrix(p.labels, p.prediction, 3 if p.task == TIER_TASK else 2)
        for p in all_predictions
    }
    write_tsv(out_dir / "metrics.tsv", METRIC_COLUMNS, metrics)
    write_tsv(
        out_dir / "predictions.tsv",
        ("approach", "task", "key", "label", "probability", "prediction"),
        [
            {
                "approach": p.approach,
                "task": p.task,
                "key": k,
                "label": int(y),
                "probability": float(q),
                "prediction": int(d),
            }
            for p in all_predictions
            for k, y, q, d in zip(p.keys, p.labels, p.probability, p.prediction)
        ],
    )
    write_tsv(
        out_dir / "confusion.tsv",
        ("approach_task", "true", "predicted", "count"),
        [
            {"approach_task": name, "true": i, "predicted": j, "count": int(m[i, j])}
            for name, m in confusions.items()
            for i in range(m.shape[0])
            for j in range(m.shape[1])
        ],
    )
    report.write_page(out_dir / "report.html", title, metrics, confusions, curves or {})
    return metrics


def test_tiers(samples: list[Sample]) -> dict[str, int]:
    """True tier of every FLAIR of the test split that has one (not rejected, all grades labelled)."""
    return {
        s.key: t
        for s in samples
        if s.domain == "target" and s.split == "test" and (t := tier(s.straight_reject, s.grades)) is not None
    }


def evaluate_runs(
    run_dirs: list[Path], out_dir: Path, approach: str, resamples: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Evaluate the runs of one approach (one run per task), adding the tier tasks when they can be formed."""
    by_task: dict[str, Predictions] = {}
    curves: dict[str, list[dict[str, str]]] = {}
    cache = None
    for run_dir in run_dirs:
        predictions, cache = predict_run(Path(run_dir), approach)
        by_task[predictions.task] = predictions
        curves[predictions.task] = report.selected_curves(Path(run_dir))
    true_tiers = test_tiers(cache.read_samples()) if cache is not None else {}
    all_predictions = list(by_task.values()) + tier_predictions(approach, by_task, true_tiers)
    return evaluate_predictions(
        all_predictions, out_dir, f"flairqc-train evaluation: {approach}", curves, resamples, seed
    )


def evaluate_models(
    models_dir: Path, cache_dir: Path, out_dir: Path, approach: str, resamples: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Evaluate an exported model set (ONNX, with its manifest's thresholds) on a cache's test split, as the
    BIDS-App would decide: the shipped default models, or a set whose training runs are gone."""
    from flairqc_app.infer import load_models

    models = load_models(models_dir, "cpu")
    cache = VolumeCache(cache_dir)
    samples = cache.read_samples()
    by_task: dict[str, Predictions] = {}
    for task, spec in models.specs.items():
        if spec.spatial_shape != cache.shape:
            raise ValueError(
                f"{task}: the model takes {spec.spatial_shape}, the cache {cache_dir} holds {cache.shape}"
            )
        test = test_pool(samples, task)
        positive = np.asarray([models.probability(task, cache.load(key)) for key in test.keys])
        threshold = models.thresholds[task]
        by_task[task] = Predictions(
            approach,
            task,
            test.keys,
            np.asarray(test.labels),
            positive,
            (positive >= threshold).astype(int),
            threshold,
        )
    all_predictions = list(by_task.values()) + tier_predictions(approach, by_task, test_tiers(samples))
    return evaluate_predictions(
        all_predictions, out_dir, f"flairqc-train evaluation: {approach}", None, resamples, seed
    )


def compare_predictions(
    a: dict[tuple[str, str], int],
    b: dict[tuple[str, str], int],
    labels: dict[tuple[str, str], int],
    name_a: str,
    name_b: str,
) -> list[dict[str, Any]]:
    """McNemar per task on the images both approaches predicted; p Bonferroni-corrected over the tasks."""
    tasks = sorted({t for t, _ in a} & {t for t, _ in b})
    rows = []
    for task in tasks:
        keys = sorted(k for (t, k) in a if t == task and (t, k) in b)
        y = np.asarray([labels[(task, k)] for k in keys])
        test = mcnemar(y, np.asarray([a[(task, k)] for k in keys]), np.asarray([b[(task, k)] for k in keys]))
        rows.append(
            {
                "task": task,
                "a": name_a,
                "b": name_b,
                "n": test.n,
                "a_only_correct": test.a_only,
                "b_only_correct": test.b_only,
                "p_value": test.p_value,
                "p_bonferroni": min(1.0, test.p_value * len(tasks)),
            }
        )
    return rows


def compare_dirs(eval_a: Path, eval_b: Path, out_dir: Path) -> list[dict[str, Any]]:
    """McNemar between the predictions of two `evaluate` outputs; writes comparison.tsv and .html."""

    def load(path: Path) -> tuple[str, dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        rows = read_tsv(Path(path) / "predictions.tsv")
        name = rows[0]["approach"] if rows else str(path)
        return (
            name,
            {(r["task"], r["key"]): int(r["prediction"]) for r in rows},
            {(r["task"], r["key"]): int(r["label"]) for r in rows},
        )

    name_a, pred_a, labels = load(eval_a)
    name_b, pred_b, _ = load(eval_b)
    rows = compare_predictions(pred_a, pred_b, labels, name_a, name_b)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(
        out_dir / "comparison.tsv",
        ("task", "a", "b", "n", "a_only_correct", "b_only_correct", "p_value", "p_bonferroni"),
        rows,
    )
    metrics = read_tsv(Path(eval_a) / "metrics.tsv") + read_tsv(Path(eval_b) / "metrics.tsv")
    report.write_page(out_dir / "comparison.html", f"{name_a} vs {name_b}", metrics, {}, {}, rows)
    return rows
