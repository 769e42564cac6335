"""`ccnn compare --seeds` and `ccnn benchmark` on tiny data (seconds), the claims' verdicts, the
theta-vs-tau check against hand-computed values, and the schedule of the extra-data variants."""
import json
import math

import numpy as np
import pytest

from ccnn import benchmark
from ccnn.cli import main
from ccnn.dependence import frank_tau, spearman, theta_vs_tau
from ccnn.experiment import keep_target_updates
from ccnn.metrics import evaluate
from ccnn.seeds import load_seed, parse_seeds, summarise_seeds
from ccnn.seeds_report import claim_verdict
from ccnn.train_config import TrainConfig

FAST = ["--image-size", "16", "--epochs", "1", "--batch-size", "8", "--samples-per-epoch", "16",
        "--ibb-unary-batches", "1", "--ibb-pairwise-batches", "1", "--no-progress", "--split", "fraction:0.6"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("seeds")
    data = generate_synthetic(root / "disfa", context="disfa", subjects=6, frames=6, seed=0, image_size=32)
    out = root / "cmp"
    assert main(["compare", "--data", str(data), "--variants", "OCNN,CCNN", "--seeds", "0,3",
                 "--out", str(out), "--cache-dir", str(root / "cache"), *FAST]) == 0
    return out


def test_compare_seeds_writes_one_folder_per_seed_and_the_summary(seed_run):
    for name in ("seeds.md", "seeds.csv", "seeds.json", "seeds.png", "seed0/seed.json", "seed3/seed.json",
                 "seed0/ocnn/model.pt", "seed3/ccnn/model.pt"):
        assert (seed_run / name).exists(), name
    summary = json.loads((seed_run / "seeds.json").read_text())
    assert summary["seeds"] == [0, 3]
    assert list(summary["variants"]) == ["OCNN", "CCNN", "CCNN argmax"]
    assert "| OCNN |" in (seed_run / "seeds.md").read_text()


def test_seed_metrics_are_those_of_the_saved_predictions_and_splits_differ(seed_run):
    subjects = []
    for seed in (0, 3):
        record, predictions = load_seed(seed_run / f"seed{seed}")
        for name, (preds, labels, names) in predictions.items():
            recomputed = evaluate(labels, preds, record["aus"])
            assert record["results"][name]["icc_avg"] == pytest.approx(recomputed["icc_avg"], nan_ok=True)
            assert record["results"][name]["mae_avg"] == pytest.approx(recomputed["mae_avg"])
        subjects.append(set(predictions["OCNN"][2]))
    assert subjects[0] != subjects[1]  # the seed sets the split


def test_summary_is_the_mean_and_spread_of_the_seeds(seed_run):
    summary = json.loads((seed_run / "seeds.json").read_text())
    records = [load_seed(seed_run / f"seed{s}")[0] for s in (0, 3)]
    for name in ("OCNN", "CCNN"):
        maes = [r["results"][name]["mae_avg"] for r in records]
        assert summary["variants"][name]["mae_avg"] == pytest.approx([np.mean(maes), np.std(maes, ddof=1)])
    diff = next(d for d in summary["differences"] if (d["a"], d["b"]) == ("OCNN", "CCNN"))
    expected = np.mean([r["results"]["OCNN"]["mae_avg"] - r["results"]["CCNN"]["mae_avg"] for r in records])
    assert diff["mae_diff"] == pytest.approx(expected)
    low, high = diff["mae_interval"]
    assert low <= high
    # rebuilt from the files alone: the same summary
    again = summarise_seeds(seed_run, replicates=summary["replicates"])
    assert again["variants"]["CCNN"]["mae_interval"] == pytest.approx(summary["variants"]["CCNN"]["mae_interval"])


def test_benchmark_quick_tests_the_claims_and_theta(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "BENCH_VARIANTS", ["CCNN-IT", "CCNN-IT(*)"])
    summary = benchmark.run_benchmark(tmp_path, seeds=[0, 1], quick=True, replicates=200, log=lambda *a: None)
    claim = summary["claims"][0]
    assert (claim["claim"], claim["a"], claim["b"]) == ("extra datasets help", "CCNN-IT(*)", "CCNN-IT")
    assert claim["verdict"] == claim_verdict(claim["icc_interval"])
    theta = summary["theta_vs_tau"]["CCNN-IT"]
    assert len(theta["spearman"]) == 2 and theta["strong_pairs"] > 0
    # the (*) model got the target's CNN updates three times over (three datasets, equal shares)
    def records(variant):
        return [json.loads(line) for line in (tmp_path / "seed0" / variant / "log.jsonl").read_text().splitlines()]
    steps, alone = records("ccnn-it-multi"), records("ccnn-it")
    count = lambda records: sum(r.get("event") == "step" and r["epoch"] == 0 for r in records)  # noqa: E731
    assert count(steps) == 3 * count(alone)
    assert json.loads((tmp_path / "seeds.json").read_text())["settings"]["extra_adds_updates"] is True


def test_keep_target_updates():
    class Faces:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    faces = [Faces(300), Faces(100), Faces(200)]
    config = TrainConfig(samples_per_epoch=600)
    assert keep_target_updates(config, "ibb", faces).samples_per_epoch == 1800
    assert keep_target_updates(config, "joint", faces).samples_per_epoch == 1200
    assert keep_target_updates(TrainConfig(), "ibb", faces).samples_per_epoch == 900


def test_claim_verdicts():
    assert claim_verdict((0.01, 0.2)) == "holds"
    assert claim_verdict((-0.2, -0.01)) == "does not hold"
    assert claim_verdict((-0.1, 0.1)) == "inconclusive on this data"
    assert claim_verdict((math.nan, 0.1)) == "inconclusive on this data"


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 7") == [3, 7]
    for bad in ("", "a", "1,1", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_bad_seeds_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--data", "x", "--out", "y", "--seeds", "0,0"])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_frank_tau_known_values():
    assert frank_tau(0.0) == 0.0
    assert frank_tau(5.7363) == pytest.approx(0.5, abs=1e-4)     # Nelsen (2006), Frank tau = 1/2
    assert frank_tau(-5.7363) == pytest.approx(-0.5, abs=1e-4)
    assert frank_tau(1e-3) == pytest.approx(1e-3 / 9, rel=1e-3)  # tau ~ theta / 9 near 0


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 1 2 3, y: 1 3 2 -> 1 - 6 * (0 + 1 + 1) / (3 * 8) = 0.5
    assert spearman([1, 2, 3], [5, 9, 7]) == pytest.approx(0.5)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_theta_vs_tau_counts_pruned_edges_as_zero():
    aus = [1, 2, 4]
    tau = np.array([[1, 0.5, -0.3], [0.5, 1, 0.05], [-0.3, 0.05, 1]])
    check = theta_vs_tau({(2, 1): 4.0, (1, 4): 1.0}, aus, tau)       # (2, 4) pruned; (1, 4) wrong sign
    assert check["pairs"] == 3 and check["strong_pairs"] == 2
    assert check["sign_agreement"] == 0.5
    assert check["spearman"] == pytest.approx(spearman([4.0, 1.0, 0.0], [0.5, -0.3, 0.05]))
    with pytest.raises(ValueError, match="true_tau"):
        theta_vs_tau({}, aus, np.eye(2))


def test_the_committed_benchmark_run_follows_from_its_files(tmp_path):
    """docs/benchmark holds each seed's metrics and test predictions: the summary rebuilt from them
    gives the committed claims, intervals and verdicts (>= 5 seeds)."""
    import shutil
    from pathlib import Path

    from ccnn.data.synth_labels import expected_kendall_tau
    committed_dir = Path(__file__).resolve().parents[1] / "docs" / "benchmark"
    committed = json.loads((committed_dir / "seeds.json").read_text())
    assert len(committed["seeds"]) >= 5
    for seed in committed["seeds"]:
        shutil.copytree(committed_dir / f"seed{seed}", tmp_path / f"seed{seed}")
    again = summarise_seeds(tmp_path, replicates=committed["replicates"], true_tau=expected_kendall_tau("disfa"),
                            title=committed["title"])
    assert [c["claim"] for c in again["claims"]] == [c["claim"] for c in committed["claims"]]
    for ours, theirs in zip(again["claims"], committed["claims"]):
        assert ours["icc_diff"] == pytest.approx(theirs["icc_diff"])
        assert ours["icc_interval"] == pytest.approx(theirs["icc_interval"])
        assert ours["verdict"] == theirs["verdict"]
    for name, variant in committed["variants"].items():
        assert again["variants"][name]["icc_avg"] == pytest.approx(variant["icc_avg"], nan_ok=True)


def test_a_damaged_seed_json_means_the_seed_runs_again(tmp_path):
    """A seed.json cut short (an interruption used to leave one: it was written in place) or edited
    ended the resumed benchmark with json's own message; it now counts as not finished."""
    from ccnn.seeds import _finished
    folder = tmp_path / "seed0"
    folder.mkdir()
    assert not _finished(folder, ["OCNN"])
    for text in ('{"seed": 0, "resu', "[]", '{"results": 5}'):
        (folder / "seed.json").write_text(text)
        assert not _finished(folder, ["OCNN"])
    (folder / "seed.json").write_text('{"results": {"OCNN": {}, "CCNN": {}}}')
    assert _finished(folder, ["OCNN"]) and not _finished(folder, ["OCNN", "SCNN"])
