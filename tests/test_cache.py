"""`ccnn cache`: listing and clearing the pre-processing cache (ccnn.cache)."""
import os
import time

import numpy as np
import pytest

from ccnn.cache import cache_entries, clear_cache, resolve_cache_dir
from ccnn.cli import main
from ccnn.data import generate_synthetic, load_dataset
from ccnn.preprocess import preprocess


@pytest.fixture()
def cache(tmp_path):
    ds = load_dataset(generate_synthetic(tmp_path / "disfa", context="disfa", subjects=2, frames=4, seed=0,
                                         image_size=32))
    folder = tmp_path / "cache"
    preprocess(ds, size=16, cache_dir=folder, workers=1, progress=False)
    preprocess(ds, size=24, cache_dir=folder, workers=1, progress=False)
    (folder / "notes.txt").write_text("not an entry")
    (folder / "synth-disfa-16-0123.tmp-99999").mkdir()  # left by an interrupted run
    return folder


def test_list_names_each_entry_its_size_and_what_it_holds(cache, capsys):
    entries = cache_entries(cache)
    assert len(entries) == 3
    complete = [e for e in entries if e.dataset is not None]
    assert sorted(e.size for e in complete) == [16, 24]
    assert all(e.dataset == "synth-disfa" and e.frames == 8 and e.bytes > 16 * 16 * 4 for e in complete)
    assert main(["cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"3 cache entries in {cache} (")
    assert "synth-disfa, 8 faces of 16x16 float32 from 8 frames" in out and "incomplete" in out


def test_clear_older_than_keeps_recent_entries_then_clear_removes_all(cache, capsys):
    old = next(e for e in cache_entries(cache) if e.size == 16)
    past = time.time() - 10 * 86400
    for f in old.path.rglob("*"):
        os.utime(f, (past, past))
    assert main(["cache", str(cache), "--clear", "--older-than", "5"]) == 0
    assert "1 cache entry removed" in capsys.readouterr().out
    assert not old.path.exists() and len(cache_entries(cache)) == 2
    assert len(clear_cache(cache)) == 2 and cache_entries(cache) == []
    assert (cache / "notes.txt").exists()  # only cache entries are removed


def test_a_data_set_folder_means_its_cache(tmp_path):
    (tmp_path / "data" / ".ccnn_cache").mkdir(parents=True)
    assert resolve_cache_dir(tmp_path / "data") == tmp_path / "data" / ".ccnn_cache"
    assert main(["cache", str(tmp_path / "missing")]) == 2


def test_train_reuses_the_entry_of_ccnn_preprocess(tmp_path, capsys):
    """prepare_data aligns the whole data set once (the same entry as `ccnn preprocess`) and takes
    each part's subjects from it without copying."""
    from ccnn.experiment import prepare_data
    from ccnn.preprocess import RowView
    data = generate_synthetic(tmp_path / "disfa", context="disfa", subjects=5, frames=4, seed=0, image_size=32)
    folder = tmp_path / "cache"
    assert main(["preprocess", str(data), "--size", "16", "--cache", str(folder), "--workers", "1", "--quiet"]) == 0
    entry = [e.path for e in cache_entries(folder)]
    assert main(["train", "--data", str(data), "--head", "ocnn", "--out", str(tmp_path / "run"), "--cache-dir",
                 str(folder), "--image-size", "16", "--epochs", "1", "--batch-size", "8", "--no-progress",
                 "--split", "fraction:0.6"]) == 0
    assert [e.path for e in cache_entries(folder)] == entry and len(entry) == 1
    prepared = prepare_data(str(data), split="fraction:0.6", image_size=16, cache_dir=folder, progress=False)
    parts = [prepared.train[0], prepared.val[0], prepared.test[0]]
    assert all(isinstance(p.images, RowView) for p in parts)
    assert sum(len(p) for p in parts) == 20 and sum(len(set(p.subjects)) for p in parts) == 5
    whole = preprocess(load_dataset(data), size=16, cache_dir=folder, progress=False)
    rows = np.flatnonzero(np.isin(whole.subjects, parts[2].subjects))
    np.testing.assert_array_equal(np.asarray(parts[2].images), whole.images[rows])
    np.testing.assert_array_equal(parts[2].images[1, 2:5, 3:7], whole.images[rows[1], 2:5, 3:7])
    np.testing.assert_array_equal(parts[2].labels, whole.labels[rows])


def test_eval_reuses_the_whole_set_entry_and_a_label_change_reuses_the_faces(tmp_path, monkeypatch, capsys):
    """ccnn eval aligns the whole data set once (the entry of ccnn preprocess and ccnn train); a
    second eval, of any part, aligns nothing, and after the labels change the cached faces are
    reused with the new labels: the same metrics as a fresh alignment without the cache."""
    import ccnn.preprocess
    from ccnn.checkpoint import save_model
    from ccnn.experiment import evaluate_checkpoint
    from ccnn.model import CCNN

    data = generate_synthetic(tmp_path / "disfa", context="disfa", subjects=5, frames=6, seed=0, image_size=32)
    aus = load_dataset(data).aus
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = save_model(tmp_path / "model.pt", CCNN(aus, head="ordinal", dataset_aus={"synth-disfa": aus},
                                                  image_size=16),
                       split={"dataset": "synth-disfa", "scheme": "fraction:0.6", "seed": 0,
                              "test_subjects": ["SN002", "SN004"]})
    folder = tmp_path / "cache"

    def run(part="test", cache=folder):
        return evaluate_checkpoint(model, str(data), part=part, method="argmax", cache_dir=cache,
                                   progress=False)[0]

    before = run()
    entry = [e.path for e in cache_entries(folder)]
    assert len(entry) == 1 and cache_entries(folder)[0].frames == 30  # the whole set, not the test part
    labels = (data / "labels.csv").read_text().splitlines()
    header = labels[0].split(",")
    au_columns = [k for k, name in enumerate(header) if name.startswith("AU")]
    changed = [labels[0]]
    for line in labels[1:]:  # every intensity raised by one level (capped at 5)
        cells = line.split(",")
        for k in au_columns:
            cells[k] = str(min(int(cells[k]) + 1, 5))
        changed.append(",".join(cells))
    (data / "labels.csv").write_text("\n".join(changed) + "\n")
    fresh = run(cache=False)  # aligned again, in a temporary folder, with the new labels

    def no_alignment(*args, **kwargs):
        raise AssertionError("the faces were aligned again")
    monkeypatch.setattr(ccnn.preprocess, "_build", no_alignment)
    after = run()
    assert [e.path for e in cache_entries(folder)] == entry
    assert after["mae_avg"] == pytest.approx(fresh["mae_avg"], abs=1e-12)
    np.testing.assert_equal(after["per_au"], fresh["per_au"])  # NaN ICCs (untrained model) count as equal
    assert after["mae_avg"] != pytest.approx(before["mae_avg"])  # the new labels were used
    for part in ("train", "all"):
        assert len(run(part)["per_au"]) == len(aus)
    assert main(["eval", "--checkpoint", str(model), "--data", str(data), "--cache-dir", str(folder),
                 "--method", "argmax", "--no-progress"]) == 0
    assert "synth-disfa (test)" in capsys.readouterr().out
    assert [e.path for e in cache_entries(folder)] == entry
