"""Thresholds set on the real-proxy set, and the issue's criteria scored on it (issue 31, flairqc_app/train/proxy.py).

The set's table (`benchmarks/bench_real_proxy.py` writes it: one row per image with its variant, artefact, level and
the BIDS-App's probabilities) is all both need, so thresholds can be set and scored again without re-running the
app. The rule, per task:

- *hard*: every clean variant stays below the threshold (each clean variant tier 1); for straight_reject every
  proxy image, clean or degraded, stays below it (no variant straight-rejected);
- *soft*: among the thresholds the hard rule allows, the one that puts the most images on their side: the task's
  positives (its artefact at or above its level; for straight_reject the real rejects) at or above it, its
  negatives (the other artefacts, and for the severe task the artefact's level 1) below it; ties: the middle of the
  widest such interval. So graded degradations cross the thresholds in order: level 1 the moderate one, level 2
  the severe one.

Each threshold comes with the record of how it was set (`Calibration`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flairqc_app import tsv
from flairqc_app.config import ARTEFACTS, SEVERITIES, TASKS
from flairqc_app.grade import decide

REJECT_PREFIX = "reject_"  # variant name of the real images that must be rejected (T1w, T2w, 2D FLAIR)
LEVEL_OF = {severity: level for level, severity in enumerate(SEVERITIES, start=1)}  # moderate 1, severe 2


@dataclass(frozen=True)
class Calibration:
    """How one threshold was set: its hard bound, what crosses it and what it keeps out."""

    task: str
    threshold: float
    hard_bound: (
        float  # the highest probability that must stay below (clean variants; all proxy images for reject)
    )
    positives_at_or_above: int
    positives: int
    negatives_below: int
    negatives: int
    rule: str


def write_cases(path: Path, rows: list[dict]) -> None:
    """The set's table, one row per image (None as an empty cell)."""
    tsv.write_rows(path, rows[0], rows, cell=lambda v: "" if v is None else str(v), quoted=True)


def read_cases(path: Path) -> list[dict]:
    """The set's table: numbers parsed, empty cells (a gate-skipped image has no probabilities) as None."""
    return [{k: _parse(v) for k, v in row.items()} for row in tsv.read_rows(path, quoted=True)]


def _parse(text: str) -> float | int | str | None:
    """
    >>> [_parse(t) for t in ("2", "0.25", "", "native")]
    [2, 0.25, None, 'native']
    """
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def is_reject(row: dict) -> bool:
    return str(row["variant"]).startswith(REJECT_PREFIX)


def verdict_under(row: dict, thresholds: dict[str, float]) -> dict:
    """The row's verdict with other thresholds (the app's own verdict when the gate skipped it)."""
    if row["status"] != "ok":
        return {
            "straight_reject": int(row["straight_reject"] or 0),
            "tier": None,
            **{a: None for a in ARTEFACTS},
        }
    verdict = decide({t: float(row[f"p_{t}"]) for t in TASKS}, thresholds)
    return {"straight_reject": verdict.straight_reject, "tier": verdict.tier, **verdict.grades}


def _split(rows: list[dict], task: str) -> tuple[list[float], list[float], list[float]]:
    """Probabilities of the task's hard negatives, positives and soft negatives (module docstring)."""
    scored = [r for r in rows if r["status"] == "ok"]
    proxy = [r for r in scored if not is_reject(r)]
    p = f"p_{task}"
    if task == "straight_reject":
        return [r[p] for r in proxy], [r[p] for r in scored if is_reject(r)], []
    artefact, severity = task.rsplit("_", 1)
    level = LEVEL_OF[severity]
    positive = [r[p] for r in proxy if r["artefact"] == artefact and r["level"] >= level]
    soft = [r[p] for r in proxy if r["level"] > 0 and (r["artefact"] != artefact or r["level"] < level)]
    return [r[p] for r in proxy if r["level"] == 0], positive, soft


def best_threshold(hard: list[float], positives: list[float], soft: list[float]) -> float:
    """The threshold above every hard negative that puts the most positives at or above it and soft negatives
    below it; ties: the middle of the widest interval between neighbouring probabilities.

    >>> best_threshold([0.1, 0.2], [0.5, 0.6, 0.15], [0.3])
    0.4
    >>> best_threshold([0.3], [0.1], [])  # nothing above the clean images: halfway from them to 1
    0.65
    """
    bound = max(hard)
    values = sorted({v for v in [*positives, *soft] if v > bound} | {bound, 1.0})
    best: tuple[int, float, float] | None = None
    for low, high in zip(values, values[1:]):
        t = (low + high) / 2
        score = sum(v >= t for v in positives) + sum(v < t for v in soft)
        if best is None or (score, high - low) > best[:2]:
            best = (score, high - low, t)
    return round(best[2], 6) if best else bound


def calibrate(rows: list[dict]) -> list[Calibration]:
    """One threshold per task from the set's table (module docstring)."""
    records = []
    for task in TASKS:
        hard, positives, soft = _split(rows, task)
        if not hard:
            raise ValueError(f"{task}: the table has no clean proxy image to bound the threshold")
        t = best_threshold(hard, positives, soft)
        rule = (
            "above every proxy image (none straight-rejected); most real rejects at or above"
            if task == "straight_reject"
            else "above every clean variant (all tier 1); most of the artefact at or above its level over it, "
            "other artefacts" + (" and its level 1" if task.endswith("severe") else "") + " under it"
        )
        records.append(
            Calibration(
                task,
                t,
                max(hard),
                sum(v >= t for v in positives),
                len(positives),
                sum(v < t for v in soft),
                len(soft),
                rule,
            )
        )
    return records


def thresholds_of(records: list[Calibration]) -> dict[str, float]:
    return {r.task: r.threshold for r in records}


def write_calibration(records: list[Calibration], out: Path) -> tuple[Path, Path]:
    """`thresholds.json` (for `flairqc --thresholds`) and `calibration.json` (how each threshold was set)."""
    out.mkdir(parents=True, exist_ok=True)
    thresholds, how = out / "thresholds.json", out / "calibration.json"
    thresholds.write_text(json.dumps(thresholds_of(records), indent=1) + "\n", encoding="utf-8")
    how.write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n", encoding="utf-8")
    return thresholds, how


def wilson(hit: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default): sound at 0 / n and n / n, unlike the normal one.

    >>> [round(x, 3) for x in wilson(9, 10)]
    [0.596, 0.982]
    >>> [round(x, 3) for x in wilson(0, 10)]
    [0.0, 0.278]
    """
    if n == 0:
        return float("nan"), float("nan")
    p = hit / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, float((centre - half) / (1 + z * z / n))), min(
        1.0, float((centre + half) / (1 + z * z / n))
    )


@dataclass(frozen=True)
class Criteria:
    """The issue's "Done when" on the set: counts, so that a table can say n / N."""

    clean_tier1: int
    clean: int
    straight_rejected: int
    proxy: int
    graded: dict[
        str, tuple[int, int]
    ]  # artefact (and "all") -> (graded at or above the applied level, cases)
    rejects_rejected: int
    rejects: int

    @property
    def graded_fraction(self) -> float:
        hit, n = self.graded["all"]
        return hit / n if n else float("nan")


def criteria(rows: list[dict], thresholds: dict[str, float]) -> Criteria:
    """Score the set under `thresholds`: clean variants tier 1, degradations graded at or above their level, no
    proxy image straight-rejected, the real rejects rejected."""
    verdicts = [(r, verdict_under(r, thresholds)) for r in rows]
    proxy = [(r, v) for r, v in verdicts if not is_reject(r)]
    clean = [(r, v) for r, v in proxy if r["level"] == 0]
    degraded = [(r, v) for r, v in proxy if r["level"] > 0]
    graded = {
        a: (
            sum(
                not v["straight_reject"] and (v[a] or 0) >= r["level"]
                for r, v in degraded
                if r["artefact"] == a
            ),
            sum(r["artefact"] == a for r, _ in degraded),
        )
        for a in ARTEFACTS
    }
    graded["all"] = tuple(np.sum(list(graded.values()), axis=0).tolist())
    rejects = [v for r, v in verdicts if is_reject(r)]
    return Criteria(
        clean_tier1=sum(not v["straight_reject"] and v["tier"] == 1 for _, v in clean),
        clean=len(clean),
        straight_rejected=sum(v["straight_reject"] for _, v in proxy),
        proxy=len(proxy),
        graded=graded,
        rejects_rejected=sum(v["straight_reject"] for v in rejects),
        rejects=len(rejects),
    )


def leave_one_variant_out(rows: list[dict]) -> Criteria:
    """The criteria on each variant under thresholds set on the other variants, summed: what calibration on the
    set promises for a presentation it has not seen (in-sample scores flatter it)."""
    variants = sorted({r["variant"] for r in rows if not is_reject(r)})
    parts = []
    for held in variants:
        thresholds = thresholds_of(calibrate([r for r in rows if r["variant"] != held]))
        parts.append(criteria([r for r in rows if r["variant"] == held or is_reject(r)], thresholds))
    graded = {k: tuple(np.sum([p.graded[k] for p in parts], axis=0).tolist()) for k in parts[0].graded}
    return Criteria(
        sum(p.clean_tier1 for p in parts),
        sum(p.clean for p in parts),
        sum(p.straight_rejected for p in parts),
        sum(p.proxy for p in parts),
        graded,
        sum(p.rejects_rejected for p in parts),
        sum(p.rejects for p in parts),
    )


# ---------------------------------------------------------------- choosing models on the set
def on_side(record: Calibration) -> int:
    """Proxy images on their side of the threshold: positives at or above it and negatives below it."""
    return record.positives_at_or_above + record.negatives_below


def prefer(records: dict[str, list[Calibration]], default: str, margin: int = 2) -> dict[str, str]:
    """Per task, the candidate kept: `default` (the simpler, e.g. single runs) unless another puts at least `margin`
    more proxy images on their side at its own calibrated threshold (a measurable gain, not a one-image tie-break).

    >>> one = [Calibration("noise_severe", 0.5, 0.1, 8, 10, 5, 5, "")]
    >>> prefer({"single": one, "ensemble": [Calibration("noise_severe", 0.4, 0.1, 9, 10, 5, 5, "")]}, "single")
    {'noise_severe': 'single'}
    >>> prefer({"single": one, "ensemble": [Calibration("noise_severe", 0.4, 0.1, 10, 10, 5, 5, "")]}, "single")
    {'noise_severe': 'ensemble'}
    """
    by_task = {name: {r.task: r for r in recs} for name, recs in records.items()}
    chosen = {}
    for task in by_task[default]:
        best = max(by_task, key=lambda name: on_side(by_task[name][task]))
        gain = on_side(by_task[best][task]) - on_side(by_task[default][task])
        chosen[task] = best if gain >= margin else default
    return chosen


def assemble(
    models_dirs: dict[str, Path],
    records: dict[str, list[Calibration]],
    choice: dict[str, str],
    out: Path,
    version: str,
) -> dict:
    """A model set in `out` of each task's chosen candidate (ONNX copied, hash checked), its threshold the one
    calibrated on the real-proxy set, with how it was set in the entry's provenance; returns the manifest."""
    import shutil

    from flairqc_app.manifest import read_manifest, write_manifest

    out.mkdir(parents=True, exist_ok=True)
    manifests = {name: read_manifest(path) for name, path in models_dirs.items()}  # checks files and hashes
    first = manifests[choice[TASKS[0]]][0]
    manifest = {k: first[k] for k in ("format_version", "name", "description") if k in first}
    manifest |= {"version": version, "models": {}}
    for task in TASKS:
        name = choice[task]
        raw, specs = manifests[name]
        record = next(r for r in records[name] if r.task == task)
        shutil.copyfile(specs[task].path, out / specs[task].path.name)
        entry = json.loads(json.dumps(raw["models"][task]))
        entry["threshold"] = record.threshold
        entry.setdefault("provenance", {})["threshold_set_on"] = {
            "set": "real proxy (flairqc_app/train/proxy.py)",
            "candidate": name,
            **asdict(record),
        }
        manifest["models"][task] = entry
    write_manifest(out, manifest)
    read_manifest(out)
    return manifest
