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
