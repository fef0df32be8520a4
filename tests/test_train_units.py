"""Unit tests of the training toolkit: GRL, schedules, streams, splits, labels, models, metrics, settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flairqc_app.config import ARTEFACTS, GRID_SHAPE  # noqa: E402
from flairqc_app.grid import resize_to  # noqa: E402
from flairqc_app.train import labels as lab  # noqa: E402
from flairqc_app.train import schedules, settings  # noqa: E402
from flairqc_app.train.cache import Sample, assign_test_split  # noqa: E402
from flairqc_app.train.methods import METHODS, resolve  # noqa: E402
from flairqc_app.train.metrics import (  # noqa: E402
    balanced_accuracy,
    best_threshold,
    bootstrap_ci,
    confusion_matrix,
    mcnemar,
)
from flairqc_app.train.models import (  # noqa: E402
    SSDANet,
    TargetClassifier,
    feature_grid,
    reverse_gradient,
)
from flairqc_app.train.pools import Pool, Pools, make_pools  # noqa: E402
from flairqc_app.train.streams import BatchStream  # noqa: E402


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------ gradient reversal and schedules
@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0])
def test_grl_is_identity_forward_and_flips_scaled_gradient(lambd):
    x = torch.randn(4, 5, requires_grad=True)
    upstream = torch.randn(4, 5)
    y = reverse_gradient(x, lambd)
    assert torch.equal(y, x)
    (y * upstream).sum().backward()
    assert torch.allclose(x.grad, -lambd * upstream)


@pytest.mark.parametrize(
    "p, expected",
    [(0.0, 0.0), (0.1, 0.46211715726), (0.25, 0.84828363995), (0.5, 0.98661429815), (1.0, 0.99990920426)],
)
def test_lambda_schedule_eq2(p, expected):
    assert schedules.grl_lambda(p) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(
    "p, expected", [(0.0, 0.01), (0.1, 0.01 / 2**0.75), (0.5, 0.01 / 6**0.75), (1.0, 0.01 / 11**0.75)]
)
def test_learning_rate_schedule_eq3(p, expected):
    assert schedules.learning_rate(p, 0.01, 10.0, 0.75) == pytest.approx(expected, rel=1e-12)
    assert schedules.learning_rate(1.0, 0.01) == pytest.approx(0.0016556, rel=1e-4)


def test_progress_is_iteration_over_total_not_epoch_over_ten():
    assert schedules.progress(0, 400) == 0.0
    assert schedules.progress(100, 400) == 0.25
    assert schedules.progress(400, 400) == 1.0


# ------------------------------------------------------------------ mini-batch streams
def test_stream_full_batches_cycle_the_pool_once_per_pass():
    pool = Pool(tuple(f"k{i}" for i in range(7)), tuple(i % 2 for i in range(7)))
    stream = BatchStream(pool, 3, seed=1)
    drawn = [stream.next() for _ in range(7)]  # 21 items = 3 passes over 7
    keys = [k for ks, _ in drawn for k in ks]
    assert all(len(ks) == 3 and len(ys) == 3 for ks, ys in drawn)
    for start in (0, 7, 14):
        assert sorted(keys[start : start + 7]) == sorted(pool.keys)  # each pass is a permutation
    assert stream.passes == 2
    for ks, ys in drawn:
        assert [pool.labels[pool.keys.index(k)] for k in ks] == list(ys)


def test_stream_state_restores_the_same_future_batches():
    pool = Pool(tuple(f"k{i}" for i in range(5)), None)
    a = BatchStream(pool, 2, seed=[3, 4])
    for _ in range(3):
        a.next()
    state = a.state_dict()
    b = BatchStream(pool, 2, seed=99)
    b.load_state_dict(state)
    assert [a.next()[0] for _ in range(6)] == [b.next()[0] for _ in range(6)]
    assert b.next()[1] is None


def test_methods_select_streams_and_heads():
    ssda, dann = METHODS["ssda"], METHODS["dann"]
    assert ssda.label_heads == ("source", "target") and ssda.adversarial and ssda.pretrain
    assert dann.label_heads == ("target",) and dann.source_head == "target"
    assert not METHODS["target-only"].adversarial and METHODS["target-only"].source_head is None
    assert not METHODS["source-only"].target_labels
    pre = ssda.pretraining()
    assert not pre.adversarial and pre.source_head == "source" and pre.target_labels
    assert resolve("direct-tier", "motion_moderate") == (ssda, lab.TIER_TASK)
    with pytest.raises(ValueError):
        resolve("nope", "motion_moderate")


# ------------------------------------------------------------------ labels
def test_task_labels_and_tiers():
    g = {"motion": 2, "noise": 1, "contrast": 0}
    assert lab.task_label("motion_moderate", 0, g) == 1 and lab.task_label("motion_severe", 0, g) == 1
    assert lab.task_label("noise_moderate", 0, g) == 1 and lab.task_label("noise_severe", 0, g) == 0
    assert lab.task_label("contrast_moderate", 0, g) == 0
    assert lab.task_label("straight_reject", 1, {}) == 1
    assert lab.task_label("motion_moderate", 1, g) is None  # artefact tasks: non-rejected only
    assert lab.task_label("motion_moderate", None, {}) is None
    assert lab.tier(0, g) == 3 and lab.task_label("tier", 0, g) == 2
    assert lab.tier(0, {"motion": 1, "noise": 0, "contrast": 0}) == 2
    assert lab.tier(0, {"motion": 0, "noise": 0, "contrast": 0}) == 1
    assert lab.tier(1, g) is None and lab.quality_class(1, {}) == "reject"


def test_read_labels_tsv(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text(
        "filename\tparticipant_id\tsession_id\trun_id\tacq_id\tmodality\tstraight_reject\treject_reason"
        "\tmotion\tnoise\tcontrast\tgen_seed\n"
        "sub-01/anat/sub-01_FLAIR.nii.gz\tsub-01\tn/a\tn/a\tn/a\tFLAIR\t0\tn/a\t1\t0\t2\t7\n"
        "sub-02/anat/sub-02_FLAIR.nii.gz\tsub-02\tn/a\tn/a\tn/a\tFLAIR\t1\ttruncated\tn/a\tn/a\tn/a\t8\n"
        "sub-03/anat/sub-03_FLAIR.nii.gz\tsub-03\tn/a\tn/a\tn/a\tFLAIR\tn/a\tn/a\tn/a\tn/a\tn/a\t9\n"
    )
    rows = lab.read_labels(path)
    assert rows[0].grades == {"motion": 1, "noise": 0, "contrast": 2} and rows[0].straight_reject == 0
    assert rows[1].straight_reject == 1 and rows[1].grades["motion"] is None
    assert not rows[2].labelled
    path.write_text(path.read_text().replace("\t2\t7", "\t5\t7"))
    with pytest.raises(ValueError, match="contrast"):
        lab.read_labels(path)


# ------------------------------------------------------------------ splits
def _samples(n_participants: int = 60) -> list[Sample]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n_participants):
        domain = "source" if i < n_participants // 2 else "target"
        for j in range(1 + i % 3):  # 1-3 images per participant
            labelled = not (domain == "target" and j == 2)
            grades = {a: int(rng.integers(0, 3)) for a in ARTEFACTS}
            out.append(
                Sample(
                    key=f"{i}-{j}",
                    domain=domain,
                    filename=f"sub-{i}/anat/x{j}.nii.gz",
                    participant_id=f"sub-{i}",
                    group=f"{domain}:sub-{i}",
                    straight_reject=int(rng.random() < 0.1) if labelled else None,
                    grades=grades if labelled else {},
                )
            )
    return assign_test_split(out, 0.2, seed=3)


def _fold_groups(
    samples: list[Sample], fold: int, folds: int = 4
) -> tuple[Pools, set[str], set[str], set[str]]:
    """The motion_moderate pools of a fold, and the participant groups of its training, validation and test pools."""
    group_of = {s.key: s.group for s in samples}
    pools = make_pools(samples, "motion_moderate", fold, folds, seed=1)
    train = {group_of[k] for name in ("source", "target", "unlabelled") for k in getattr(pools, name).keys}
    return pools, train, {group_of[k] for k in pools.validation.keys}, {group_of[k] for k in pools.test.keys}


def _labelled_target_trainval(samples: list[Sample]) -> set[str]:
    return {
        s.group
        for s in samples
        if s.domain == "target" and s.split == "trainval" and s.label("motion_moderate") is not None
    }


def test_no_participant_in_two_splits():
    samples = _samples()
    test_groups = {s.group for s in samples if s.split == "test"}
    assert test_groups and all(s.split == "test" for s in samples if s.group in test_groups)
    seen_validation = set()
    for fold in range(4):
        pools, train, val, test = _fold_groups(samples, fold)
        assert val and train and test
        assert not train & val and not train & test and not val & test
        assert set(pools.validation.labels) == {0, 1}  # stratified: both classes in every fold
        seen_validation |= val
    # every labelled target participant validates once
    assert seen_validation == _labelled_target_trainval(samples)


def test_validation_split_validates_every_fold_and_never_trains():
    samples = _samples()
    held_out = set(sorted(_labelled_target_trainval(samples))[:5])
    samples = [replace(s, split="validation") if s.group in held_out else s for s in samples]
    fold_only = set()
    for fold in range(4):
        pools, train, val, test = _fold_groups(samples, fold)
        assert held_out <= val and not held_out & train and not held_out & test
        labels = dict(zip(pools.validation.keys, pools.validation.labels))
        held_out_labelled = [
            s for s in samples if s.group in held_out and s.label("motion_moderate") is not None
        ]
        assert held_out_labelled and all(
            labels.get(s.key) == s.label("motion_moderate") for s in held_out_labelled
        )
        fold_only |= val - held_out
        assert not (val - held_out) & train
    # the cross-validation folds still cover the other labelled target participants once each
    assert fold_only == _labelled_target_trainval(samples)


def test_source_as_rejects_trains_source_images_as_straight_rejects():
    samples = _samples()
    domain_of = {s.key: s.domain for s in samples}
    plain = make_pools(samples, "straight_reject", 0, 4, seed=1)
    mixed = make_pools(samples, "straight_reject", 0, 4, seed=1, source_as_rejects=True)
    assert len(mixed.source) == 0 and set(mixed.target.keys) == set(plain.target.keys) | set(
        plain.source.keys
    )
    labels = dict(zip(mixed.target.keys, mixed.target.labels))
    assert all(labels[k] == 1 for k in plain.source.keys)  # every T1w is a reject when trained as FLAIR
    assert {k: labels[k] for k in plain.target.keys} == dict(zip(plain.target.keys, plain.target.labels))
    assert 0 in plain.source.labels  # so the option changed labels, not only pools
    for name in ("validation", "test", "unlabelled"):  # figures and thresholds stay FLAIR's, unchanged
        assert getattr(mixed, name) == getattr(plain, name)
        assert all(domain_of[k] == "target" for k in getattr(mixed, name).keys)
    assert mixed.data_sha256() != plain.data_sha256()
    with pytest.raises(ValueError, match="straight_reject"):
        make_pools(samples, "noise_severe", 0, 4, seed=1, source_as_rejects=True)


def test_same_subjects_grouping_keeps_a_person_out_of_training_when_tested():
    samples = [
        Sample(
            key=f"{d}{i}",
            domain=d,
            filename=f"{d}{i}",
            participant_id=f"sub-{i}",
            group=f"sub-{i}",
            straight_reject=0,
            grades={"motion": i % 3, "noise": 0, "contrast": 0},
        )
        for i in range(30)
        for d in ("source", "target")
    ]
    samples = assign_test_split(samples, 0.3, seed=0)
    for s in samples:
        twin = next(t for t in samples if t.group == s.group and t is not s)
        assert s.split == twin.split


# ------------------------------------------------------------------ models
def test_conv5_fc3_parameter_count_on_the_full_grid():
    ms = settings.ModelSettings()
    assert feature_grid(GRID_SHAPE, 5) == (6, 7, 6)
    conv = sum(27 * a * b + b + 2 * b for a, b in zip((1, 8, 16, 32, 64), (8, 16, 32, 64, 128)))
    head = (32256 * 1300 + 1300) + (1300 * 50 + 50) + (50 * 2 + 2)
    net = SSDANet(ms, 2, ("source", "target"), domain=True)
    assert count_parameters(TargetClassifier(net)) == conv + head == 42_293_972
    assert count_parameters(net.heads["source"]) == head
    assert count_parameters(net.domain) == head - 51  # one output


@pytest.mark.parametrize("shape", [(24, 24, 24), (17, 21, 19)])
def test_heads_forward_shapes(shape):
    fc3 = settings.ModelSettings(input_shape=shape, channels=(2, 4, 4), hidden=(8,), head="fc3")
    gap = settings.ModelSettings(input_shape=shape, channels=(2, 4, 4), hidden=(8,), head="gap")
    x = torch.rand(3, 1, *shape)
    for ms in (fc3, gap):
        net = SSDANet(ms, 3, ("target",), domain=True).eval()
        f = net.features(x)
        assert net.classify(f, "target").shape == (3, 3)
        assert net.discriminate(f, 0.5).shape == (3,)


# ------------------------------------------------------------------ resampling and metrics
def test_resize_to_is_linear_and_keeps_corners():
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in (169, 208, 179)], indexing="ij")
    ramp = 2.0 * grid[0] - grid[1] + 0.5 * grid[2]
    small = resize_to(ramp, (85, 104, 90))
    assert small.shape == (85, 104, 90) and small.dtype == np.float32
    assert small[0, 0, 0] == ramp[0, 0, 0] and small[-1, -1, -1] == pytest.approx(ramp[-1, -1, -1])
    i, j, k = 40, 50, 60  # a linear function survives linear resampling exactly
    x, y, z = i * 168 / 84, j * 207 / 103, k * 178 / 89
    assert small[i, j, k] == pytest.approx(2 * x - y + 0.5 * z, abs=1e-3)


def test_metrics_values():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 0])
    assert balanced_accuracy(y, pred) == pytest.approx((0.5 + 0.5) / 2)
    assert balanced_accuracy(y, y) == 1.0
    assert confusion_matrix(y, pred, 2).tolist() == [[2, 2], [1, 1]]
    low, high = bootstrap_ci(np.r_[y, y, y], np.r_[pred, y, y], 1000, seed=0)
    assert low < balanced_accuracy(np.r_[y, y, y], np.r_[pred, y, y]) < high
    assert bootstrap_ci(np.r_[y, y, y], np.r_[pred, y, y], 1000, seed=0) == (low, high)
    test = mcnemar(np.zeros(10), np.r_[np.ones(6), np.zeros(4)], np.zeros(10))
    assert (test.a_only, test.b_only) == (0, 6) and test.p_value == pytest.approx(2 * 0.5**6)
    threshold, ba = best_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.9]))
    assert threshold == pytest.approx(0.325) and ba == 1.0


def test_settings_toml_and_overrides(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('task = "noise_severe"\nepochs = 3\n[model]\nhead = "gap"\nchannels = [4, 8]\n')
    s = settings.load(path, {"lr0": 0.001, "seed": None})
    assert s.task == "noise_severe" and s.epochs == 3 and s.lr0 == 0.001 and s.seed == 0
    assert s.model.head == "gap" and s.model.channels == (4, 8) and s.model.hidden == (1300, 50)
    assert s.batch_size == 10 and s.lambda_gamma == 10.0 and s.lr_alpha == 10.0 and s.lr_beta == 0.75
    assert settings.load(None) == settings.TrainSettings()
    path.write_text("epoch = 3\n")
    with pytest.raises(ValueError, match="epoch"):
        settings.load(path)
    roundtrip = tmp_path / "s.json"
    s.save(roundtrip)
    assert settings.load(roundtrip) == s


def test_input_region_is_read_from_a_config_and_an_unknown_one_is_refused(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('[model]\ninput_region = "brain"\n')
    assert settings.load(path).model.input_region == "brain"
    assert settings.TrainSettings().model.input_region == "head"  # the paper's whole image by default
    path.write_text('[model]\ninput_region = "skull"\n')
    with pytest.raises(ValueError, match="input_region 'skull'"):
        settings.load(path)
