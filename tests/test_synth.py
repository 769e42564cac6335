"""Synthetic data: label model (dependency structure, marginals, smoothness), rendering, files."""
import csv
import json

import cv2
import numpy as np
import pytest
from scipy import stats

from ccnn.data import CONTEXT_AUS, generate_synthetic, load_dataset
from ccnn.data import synth_labels as sl
from ccnn.data.synth_render import WEAK_AUS, render
from ccnn.data.synthetic import sample_nuisance, subject_look

TAU_TOLERANCE = 0.05  # documented in docs/data.md


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "disfa"
    return generate_synthetic(out, subjects=4, frames=30, seed=3, image_size=64, workers=1)


def test_contexts_have_the_published_au_sets():
    assert CONTEXT_AUS["disfa"] == [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
    assert CONTEXT_AUS["fera"] == [6, 10, 12, 14, 17]
    assert CONTEXT_AUS["pain"] == [4, 6, 7, 9, 10, 12, 20, 25, 26, 43]


def test_tau_of_table_matches_scipy_kendalltau_on_an_iid_sample():
    # independent check of the exact tau-b: thresholded iid bivariate normals, scipy's estimator
    rng = np.random.default_rng(11)
    cuts = sl.thresholds_from_probabilities(sl.level_probabilities("disfa"))
    for rho in (-0.6, 0.0, 0.45, 0.8):
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=200_000)
        y = sl.quantize(z, cuts[[0, 6]])
        empirical = stats.kendalltau(y[:, 0], y[:, 1]).statistic
        exact = sl.kendall_tau_b_of_table(sl.joint_level_probabilities(rho, cuts[0], cuts[6]))
        assert abs(empirical - exact) < 0.01, (rho, empirical, exact)


def test_joint_table_has_the_model_marginals():
    probs = sl.level_probabilities("pain")
    cuts = sl.thresholds_from_probabilities(probs)
    joint = sl.joint_level_probabilities(0.5, cuts[1], cuts[3])
    np.testing.assert_allclose(joint.sum(1), probs[1], atol=1e-6)
    np.testing.assert_allclose(joint.sum(0), probs[3], atol=1e-6)


@pytest.mark.parametrize("context", ["disfa", "fera", "pain"])
def test_labels_reproduce_the_documented_dependency_structure(context):
    aus = CONTEXT_AUS[context]
    expected = np.array(sl.dependency_structure(context)["kendall_tau_b"])
    y = sl.sample_labels(context, subjects=150, frames=300, seed=5).reshape(-1, len(aus))
    for r in range(len(aus)):
        for s in range(r + 1, len(aus)):
            tau = stats.kendalltau(y[:, r], y[:, s]).statistic
            assert abs(tau - expected[r, s]) < TAU_TOLERANCE, (aus[r], aus[s], tau, expected[r, s])


def test_structure_has_the_required_strong_and_negative_pairs():
    aus = CONTEXT_AUS["disfa"]
    tau = np.array(sl.dependency_structure("disfa")["kendall_tau_b"])
    t = lambda a, b: tau[aus.index(a), aus.index(b)]  # noqa: E731
    for a, b in [(1, 2), (6, 12), (25, 26)]:
        assert t(a, b) > 0.35
    assert t(12, 15) < -0.1
    # weak AUs are tied to a visually strong partner
    for weak, partner in [(5, 1), (9, 4), (15, 12), (17, 4), (20, 25)]:
        assert abs(t(weak, partner)) > 0.15, (weak, partner)
    # contexts differ in strength: AU17 is dependent in disfa, nearly independent in fera
    fera = CONTEXT_AUS["fera"]
    tau_fera = np.array(sl.dependency_structure("fera")["kendall_tau_b"])
    assert np.abs(tau_fera[fera.index(17)][[fera.index(a) for a in (6, 10, 12, 14)]]).max() < 0.1
    assert t(4, 17) > 0.3


def test_marginals_are_ordinal_and_imbalanced():
    y = sl.sample_labels("disfa", subjects=60, frames=300, seed=1)
    for q in range(y.shape[2]):
        counts = np.bincount(y[:, :, q].ravel(), minlength=6)
        assert counts[0] / counts.sum() > 0.55          # mostly neutral
        assert np.all(np.diff(counts) < 0)               # higher levels rarer
        assert 0 < counts[5] / counts.sum() < 0.05       # top level rare but present


def test_labels_are_temporally_smooth():
    y = sl.sample_labels("disfa", subjects=20, frames=400, seed=2)
    same = np.mean(y[:, 1:] == y[:, :-1])
    jumps = np.abs(np.diff(y, axis=1))
    assert same > 0.85 and jumps.max() <= 2
    # while frames far apart are nearly independent
    far = [stats.kendalltau(y[:, :-100, q].ravel(), y[:, 100:, q].ravel()).statistic for q in range(12)]
    assert np.max(np.abs(far)) < 0.1


def test_generation_is_deterministic_and_worker_independent(tmp_path, small_set):
    other = generate_synthetic(tmp_path / "again", subjects=4, frames=30, seed=3, image_size=64, workers=2)
    assert (other / "labels.csv").read_text() == (small_set / "labels.csv").read_text()
    for name in ["SN001_0000.png", "SN004_0029.png"]:
        assert (other / "images" / name).read_bytes() == (small_set / "images" / name).read_bytes()
    changed = generate_synthetic(tmp_path / "seed4", subjects=4, frames=30, seed=4, image_size=64, workers=1)
    assert (changed / "labels.csv").read_text() != (small_set / "labels.csv").read_text()


def test_files_follow_the_documented_format(small_set):
    meta = json.loads((small_set / "meta.json").read_text())
    assert meta["aus"] == CONTEXT_AUS["disfa"] and meta["parameters"]["seed"] == 3
    assert meta["dependency"]["model"] == "gaussian-factor-copula"
    assert len(meta["dependency"]["kendall_tau_b"]) == 12
    with open(small_set / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 30
    assert list(rows[0])[:4] == ["image", "subject", "dataset", "frame"]
    labels = sl.sample_labels("disfa", 4, 30, 3).reshape(-1, 12)
    got = np.array([[int(r[f"AU{au:02d}"]) for au in meta["aus"]] for r in rows])
    np.testing.assert_array_equal(got, labels)
    image = cv2.imread(str(small_set / rows[0]["image"]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (64, 64) and image.dtype == np.uint8


def test_generic_loader_reads_the_synthetic_set(small_set):
    ds = load_dataset(small_set)
    assert ds.name == "synth-disfa" and ds.aus == CONTEXT_AUS["disfa"]
    assert len(ds) == 120 and ds.subject_list() == ["SN001", "SN002", "SN003", "SN004"]
    assert ds.eyes.shape == (120, 2, 2) and np.isfinite(ds.eyes).all()
    assert np.all(ds.eyes[:, 0, 0] < ds.eyes[:, 1, 0])  # left = image-left
    iod = np.linalg.norm(ds.eyes[:, 1] - ds.eyes[:, 0], axis=1)
    assert np.all((iod > 0.28 * 64 * 0.85) & (iod < 0.28 * 64 * 1.15))


def test_existing_set_is_kept_or_refused(small_set):
    assert generate_synthetic(small_set, subjects=4, frames=30, seed=3, image_size=64) == small_set
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_synthetic(small_set, subjects=5, frames=30, seed=3, image_size=64)


@pytest.mark.parametrize("kwargs", [{"context": "ck+"}, {"subjects": 0}, {"frames": -1},
                                    {"seed": 1.5}, {"image_size": 8}, {"workers": 0},
                                    {"image_size": 100000}])  # (tried a 37 GiB array)
def test_bad_arguments_are_rejected(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_synthetic(tmp_path / "x", **kwargs)


# --- rendering: each AU moves its own facial region, in proportion to its intensity -------------

REGION = {  # rows of a 128-px frontal face (eyes at y = 0.4 * 128 = 51): where each AU acts
    1: "brows", 2: "brows", 4: "brows", 5: "eyes", 6: "cheeks", 7: "eyes", 9: "nose", 10: "mouth",
    12: "mouth", 14: "mouth", 15: "mouth", 17: "mouth", 20: "mouth", 25: "mouth", 26: "mouth", 43: "eyes",
}
ROWS = {"brows": (20, 50), "eyes": (44, 58), "cheeks": (52, 80), "nose": (50, 82), "mouth": (80, 125)}


def _frontal(intensity, look):
    return render(look, intensity, np.array([0.0, 1.0, 0.5, 0.4]), np.array([1.0, 0, 0, 0]), 128, None)


@pytest.mark.parametrize("au", sorted(REGION))
def test_each_au_moves_its_region_monotonically(au):
    look = subject_look("disfa", 1, 0)
    neutral = _frontal({}, look).astype(float)
    change = [np.abs(_frontal({au: level}, look) - neutral) for level in range(6)]
    totals = [c.sum() for c in change]
    assert totals[0] == 0 and all(b > a for a, b in zip(totals[1:], totals[2:]))  # grows with level
    top, bottom = ROWS[REGION[au]]
    inside = change[5][top:bottom].sum() / totals[5]
    assert inside > 0.6, f"AU{au}: only {inside:.2f} of the change is in the {REGION[au]} rows"


def test_weak_aus_move_less_than_strong_ones():
    look = subject_look("disfa", 2, 0)
    neutral = _frontal({}, look).astype(float)
    amount = {au: np.abs(_frontal({au: 5}, look) - neutral).sum() for au in REGION}
    weak = max(amount[au] for au in WEAK_AUS)
    strong = min(amount[au] for au in (1, 2, 4, 12, 25, 26, 43))
    assert weak < strong, amount


def test_subjects_and_nuisances_vary():
    looks = [subject_look("disfa", s, 0) for s in range(8)]
    assert len({round(look.skin) for look in looks}) > 4
    assert np.std([look.face_half_width for look in looks]) > 0.02
    poses, lights = sample_nuisance("disfa", 0, 200, 0)
    assert np.ptp(poses[:, 0]) > 2.0 and np.ptp(poses[:, 1]) > 0.02     # rotation and scale drift
    assert np.max(np.abs(np.diff(poses[:, 0]))) < 1.5                    # smoothly
    angles = [sample_nuisance("disfa", s, 10, 0)[0][0, 0] for s in range(8)]
    assert np.ptp(angles) > 5.0                                           # subjects differ
