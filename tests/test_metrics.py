import math

import numpy as np
import pytest

from ccnn import metrics

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges, and the coefficients of their Table 4.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)
SHROUT_FLEISS_ICC = {"1,1": 0.17, "2,1": 0.29, "3,1": 0.71, "1,k": 0.44, "2,k": 0.62, "3,k": 0.91}


@pytest.mark.parametrize("kind", sorted(SHROUT_FLEISS_ICC))
def test_icc_published_example(kind):
    assert metrics.icc(SHROUT_FLEISS, kind) == pytest.approx(SHROUT_FLEISS_ICC[kind], abs=0.005)


def _icc31_by_loops(x):
    """ICC(3,1) from explicit sums of squares (loops, no vectorised helpers)."""
    n, k = x.shape
    grand = sum(x[i, j] for i in range(n) for j in range(k)) / (n * k)
    row = [sum(x[i, j] for j in range(k)) / k for i in range(n)]
    col = [sum(x[i, j] for i in range(n)) / n for j in range(k)]
    ss_rows = k * sum((r - grand) ** 2 for r in row)
    ss_err = sum((x[i, j] - row[i] - col[j] + grand) ** 2 for i in range(n) for j in range(k))
    bms = ss_rows / (n - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    return (bms - ems) / (bms + (k - 1) * ems)


def test_icc31_matches_hand_computation_on_random_ratings():
    rng = np.random.default_rng(1)
    for n, k in [(7, 2), (15, 3), (30, 5)]:
        x = rng.normal(size=(n, 1)) + 0.7 * rng.normal(size=(n, k)) + rng.normal(size=(1, k))
        assert metrics.icc(x, "3,1") == pytest.approx(_icc31_by_loops(x), rel=1e-12)


def test_icc31_two_raters_equals_covariance_form():
    # For two raters ICC(3,1) = 2 cov(x, y) / (var x + var y).
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 6, size=200)
    y_pred = np.clip(y_true + rng.integers(-1, 2, size=200), 0, 5)
    c = np.cov(y_true, y_pred)
    expected = 2 * c[0, 1] / (c[0, 0] + c[1, 1])
    assert metrics.icc31(y_true, y_pred) == pytest.approx(expected, rel=1e-12)


def test_icc31_is_consistency_not_agreement():
    y = np.arange(10.0)
    assert metrics.icc31(y, y + 3.0) == pytest.approx(1.0)  # a constant offset does not matter
    assert metrics.icc31(y, -y) == pytest.approx(-1.0)


def test_missing_labels_are_skipped_per_au():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 6, size=(50, 3))
    y_pred = rng.integers(0, 6, size=(50, 3)).astype(float)
    y_true[::4, 1] = -1
    iccs, maes = metrics.icc31(y_true, y_pred), metrics.mae(y_true, y_pred)
    keep = y_true[:, 1] >= 0
    assert iccs[1] == pytest.approx(metrics.icc31(y_true[keep, 1], y_pred[keep, 1]))
    assert maes[1] == pytest.approx(np.abs(y_true[keep, 1] - y_pred[keep, 1]).mean())
    assert iccs[0] == pytest.approx(metrics.icc31(y_true[:, 0], y_pred[:, 0]))


def test_evaluate_report_shape_and_averages():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 6, size=(40, 2))
    y_pred = np.clip(y_true + rng.integers(-1, 2, size=(40, 2)), 0, 5)
    y_true[:, 1] = -1  # an AU never annotated: undefined, left out of the averages
    report = metrics.evaluate(y_true, y_pred, [1, 12])
    assert set(report["per_au"]) == {"AU01", "AU12"}
    assert math.isnan(report["per_au"]["AU12"]["icc"]) and report["per_au"]["AU12"]["n"] == 0
    assert report["icc_avg"] == pytest.approx(metrics.icc31(y_true[:, 0], y_pred[:, 0]))
    assert report["mae_avg"] == pytest.approx(np.abs(y_true[:, 0] - y_pred[:, 0]).mean())


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        metrics.icc(SHROUT_FLEISS, "4,1")
    with pytest.raises(ValueError, match="n x k"):
        metrics.icc(np.ones(5))
    with pytest.raises(ValueError, match="same shape"):
        metrics.icc31(np.ones(5), np.ones(4))
    assert math.isnan(metrics.icc(np.ones((4, 2))))


def test_non_finite_predictions_are_refused_where_labels_are_annotated():
    """ICC refused NaN predictions while MAE returned NaN (or inf) silently; both name the entry now,
    and a prediction beside a missing label (-1) is not read."""
    truth = np.array([[0, 1], [2, -1], [3, 4]])
    for bad in (np.nan, np.inf):
        pred = np.array([[0.0, 1.0], [2.0, 0.0], [3.0, bad]])
        for f in (metrics.mae, metrics.icc31):
            with pytest.raises(ValueError, match=r"y_pred must be finite where y_true is annotated; y_pred\[2, 1\]"):
                f(truth, pred)
        with pytest.raises(ValueError, match="evaluate: y_pred must be finite"):
            metrics.evaluate(truth, pred, [1, 2])
    pred = np.array([[0.0, 1.0], [2.0, np.nan], [3.0, 4.0]])  # NaN only where the label is missing
    np.testing.assert_array_equal(metrics.mae(truth, pred), [0.0, 0.0])
