"""ccnn predict as a stream: OpenFace-style rows, no-face rows, constant memory on long videos, the
pandas API, annotated copies and load_csv reading predict's own CSV (seconds each)."""
import csv
import math
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from ccnn.cli import main
from ccnn.data.dataset import load_csv
from ccnn.predict import predict_dataframe, predict_to_csv

TRAIN_FAST = ["--image-size", "16", "--epochs", "1", "--batch-size", "8", "--samples-per-epoch", "16",
              "--ibb-unary-batches", "1", "--no-progress", "--split", "fraction:0.6"]
AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("predict")
    data = generate_synthetic(root / "disfa", context="disfa", subjects=5, frames=6, seed=0, image_size=64)
    assert main(["train", "--data", str(data), "--head", "ccnn", "--out", str(root / "run"),
                 "--cache-dir", str(root / "cache"), *TRAIN_FAST]) == 0
    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((data / "images").glob("*.png"))[:6]]
    return {"model": root / "run" / "model.pt", "faces": faces, "root": root}


def scene(face, k=0, size=(160, 120)):
    """A frame of `size` with the face (enlarged to 96 px) drifting slowly to the right."""
    w, h = size
    frame = np.full((h, w), 100, np.uint8)
    x = 20 + (k // 4) % 30
    frame[12:108, x:x + 96] = cv2.resize(face, (96, 96))
    return frame


def write_video(path, frames, fps=12.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f)
    writer.release()
    return path


def test_rows_columns_no_face_rows_and_annotations(setup, tmp_path):
    faces = setup["faces"]
    folder = tmp_path / "folder"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"img{k}.png"), scene(faces[k]))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160), 128, np.uint8))  # no face at all
    video = write_video(tmp_path / "clip.avi", [scene(faces[k % 6], k) for k in range(20)], fps=12.0)
    out = tmp_path / "au.csv"
    assert main(["predict", "--checkpoint", str(setup["model"]), str(blank), str(folder), str(video),
                 "--out", str(out), "--annotate", str(tmp_path / "ann"), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["frame", "face_id", "timestamp", "confidence", "success", "file",
                             *[f"AU{a:02d}_r" for a in AUS], *[f"AU{a:02d}_c" for a in AUS]]
    assert len(rows) == 1 + 3 + 20
    # the blank image: no face, so no values (empty cells), confidence 0
    assert rows[0]["success"] == "0" and rows[0]["confidence"] == "0.0"
    assert all(rows[0][f"AU{a:02d}_r"] == "" and rows[0][f"AU{a:02d}_c"] == "" for a in AUS)
    # a folder is a sequence: frames 1..3 with each image's file name
    assert [int(r["frame"]) for r in rows[1:4]] == [1, 2, 3]
    assert [r["file"] for r in rows[1:4]] == [str(folder / f"img{k}.png") for k in range(3)]
    # a video: frames 1..20 at its own timestamps
    assert [int(r["frame"]) for r in rows[4:]] == list(range(1, 21)) and rows[4]["file"] == str(video)
    assert math.isclose(float(rows[-1]["timestamp"]), 19 / 12.0, abs_tol=1e-3)
    for r in rows[1:]:
        assert r["success"] == "1" and 0 < float(r["confidence"]) <= 1
        for a in AUS:
            value, present = float(r[f"AU{a:02d}_r"]), float(r[f"AU{a:02d}_c"])
            assert 0 <= value <= 5 and present == float(value >= 1)
    names = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert names == ["blank_annotated.png", "clip_annotated.avi", "img0_annotated.png", "img1_annotated.png",
                     "img2_annotated.png"]
    png = cv2.imread(str(tmp_path / "ann" / "img0_annotated.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (120, 160, 3)
    assert np.abs(png[..., 1].astype(int) - png[..., 2]).max() > 50  # coloured marks, not grey
    cap = cv2.VideoCapture(str(tmp_path / "ann" / "clip_annotated.avi"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()


def test_dataframe_api_and_load_csv_round_trip(setup, tmp_path):
    faces = setup["faces"]
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), scene(faces[0]))
    video = write_video(tmp_path / "clip.avi", [scene(faces[k % 6], k) for k in range(5)])
    out, frames, found, _ = predict_to_csv(setup["model"], [image, video], tmp_path / "au.csv", device="cpu")
    assert (frames, found) == (6, 6)
    df = predict_dataframe(setup["model"], [image, video], device="cpu")
    rows = list(csv.DictReader(out.open()))
    assert list(df.columns) == list(rows[0]) and len(df) == len(rows)
    assert df["frame"].tolist() == [1, 1, 2, 3, 4, 5] and df["success"].dtype == np.int64
    np.testing.assert_allclose(df["AU12_r"], [float(r["AU12_r"]) for r in rows])
    ds = load_csv(out)  # predict's own output is a data set (predictions as labels)
    assert ds.aus == AUS and len(ds) == 6
    assert ds.image_paths[1:] == [f"{video}#{k}" for k in range(5)]
    np.testing.assert_array_equal(ds.labels, np.rint(df[[f"AU{a:02d}_r" for a in AUS]].to_numpy()))
    assert sorted(set(ds.subjects)) == sorted({str(image), str(video)})


def test_unreadable_files_get_failed_rows_and_the_rest_is_kept(setup, tmp_path, capsys):
    """A corrupt image, one too small to hold a face and a broken video, anywhere among the inputs,
    get rows with success 0; every other frame is predicted and written, then the command names them
    and exits 2. Before, the first of them stopped the run, its CSV empty."""
    faces = setup["faces"]
    folder = tmp_path / "folder"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"img{k}.png"), scene(faces[k]))
    (folder / "img1b.png").write_text("not an image")
    cv2.imwrite(str(folder / "img1c.png"), np.zeros((4, 4), np.uint8))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"\0" * 64)
    video = write_video(tmp_path / "clip.avi", [scene(faces[k % 6], k) for k in range(5)])
    out = tmp_path / "au.csv"
    assert main(["predict", "--checkpoint", str(setup["model"]), str(folder), str(broken), str(video),
                 "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "3 input file(s) could not be read" in err and "img1b.png': not an image OpenCV can read" in err
    assert "img1c.png': 4x4 pixels" in err and "broken.avi': no frame OpenCV can read" in err
    rows = list(csv.DictReader(out.open()))
    assert [(Path(r["file"]).name, r["frame"], r["success"]) for r in rows] == [
        ("img0.png", "1", "1"), ("img1.png", "2", "1"), ("img1b.png", "3", "0"), ("img1c.png", "4", "0"),
        ("img2.png", "5", "1"), ("broken.avi", "1", "0"), *[("clip.avi", str(k), "1") for k in range(1, 6)]]
    assert all(r["AU12_r"] == "" for r in rows if r["success"] == "0")
    # the same rows from the Python API, with a warning per unreadable file
    with pytest.warns(UserWarning, match="its row has success 0") as caught:
        df = predict_dataframe(setup["model"], [folder, broken, video], device="cpu")
    assert len(caught) == 3 and df["success"].tolist() == [int(r["success"]) for r in rows]
    # missing inputs and empty folders still stop everything before the first frame
    (tmp_path / "empty").mkdir()
    for bad, message in ((tmp_path / "nope.png", "does not exist"), (tmp_path / "empty", "holds no images")):
        assert main(["predict", "--checkpoint", str(setup["model"]), str(folder), str(bad),
                     "--out", str(tmp_path / "x.csv"), "--device", "cpu"]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_chunk_and_tracking_sizes_are_checked(setup, tmp_path):
    """batch_size=0 made the reader's queue unbounded and one chunk of the whole input (the memory
    bound gone); both sizes are refused before the first frame."""
    from ccnn.checkpoint import load_model
    from ccnn.predict import predict_stream
    model, _ = load_model(setup["model"])
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), scene(setup["faces"][0]))
    for bad in (dict(batch_size=0), dict(batch_size=-1), dict(batch_size=2.0), dict(redetect_every=0)):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"{name} must be an int >= 1"):
            next(predict_stream(model, [image], **bad))


def test_inputs_devices_and_crop_are_checked_by_name(setup, tmp_path):
    """A single path string was read character by character ('/nonexistent' -> "input folder '/' holds
    no images"); other inputs, an unknown device and a non-number crop were raw Python or torch errors."""
    from ccnn.checkpoint import load_model
    from ccnn.predict import predict_frames
    model, _ = load_model(setup["model"])
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), scene(setup["faces"][0]))
    assert [r["frame"] for r in predict_frames(model, str(image))] == [1]  # one path, not a list
    assert len(predict_frames(model, (p for p in [image, image]))) == 2    # any iterable of paths
    with pytest.raises(ValueError, match="input '/nonexistent' does not exist"):
        predict_frames(model, "/nonexistent")
    for bad in (None, 123, [str(image), 5]):
        with pytest.raises(ValueError, match="inputs must be a path or a list of paths"):
            predict_frames(model, bad)
    for device, expected in (("tpu", "device 'tpu': expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
                             ("meta", "device 'meta': expected")):
        with pytest.raises(ValueError, match=expected):
            predict_frames(model, [image], device=device)
    with pytest.raises(ValueError, match=r"crop must be a number in \(0, 1\], got 'x'"):
        predict_frames(model, [image], crop="x")


def _peak_bytes(model, video, tmp_path):
    tracemalloc.start()
    try:
        predict_to_csv(model, [video], tmp_path / f"{video.stem}.csv", device="cpu", batch_size=16)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_video_length(setup, tmp_path):
    faces = setup["faces"]
    short = write_video(tmp_path / "short.avi", [scene(faces[k % 6], k) for k in range(100)])
    long = write_video(tmp_path / "long.avi", [scene(faces[k % 6], k) for k in range(400)])
    _peak_bytes(setup["model"], short, tmp_path)  # warm-up: caches, cascades, lazy imports
    peak_short = _peak_bytes(setup["model"], short, tmp_path)
    peak_long = _peak_bytes(setup["model"], long, tmp_path)
    frame_bytes = 160 * 120 * 3
    # 300 more frames held would add >= 300 * frame_bytes (17 MB); the stream holds a bounded queue
    print(f"peak traced memory: {peak_short / 1e6:.2f} MB (100 frames), {peak_long / 1e6:.2f} MB (400 frames)")
    assert peak_long < peak_short + 20 * frame_bytes, (peak_short, peak_long)


@pytest.fixture(scope="module")
def copula_model():
    """A copula CCNN whose 66 edges have large random thetas, so AD3 has work to do."""
    import torch
    from ccnn.model import CCNN
    torch.manual_seed(0)
    model = CCNN(AUS, head="copula", dataset_aus={"synth-disfa": AUS}, image_size=16).eval()
    with torch.no_grad():
        for p in model.pairwise:
            p.copy_(torch.randn(()) * 3)
    return model


def _frames_with_gaps(faces, count):
    """A scene per frame, a blank frame (no face) every 7th."""
    return [np.full((120, 160), 100, np.uint8) if k % 7 == 3 else scene(faces[k % 6], k) for k in range(count)]


@pytest.mark.parametrize("method", ["ad3", "expected"])
def test_decoding_overlapped_with_the_network_gives_the_same_csv(setup, copula_model, tmp_path, method):
    from ccnn.predict import predict_stream, write_csv
    video = write_video(tmp_path / "clip.avi", _frames_with_gaps(setup["faces"], 45))
    paths = []
    for overlap in (True, False):
        rows = predict_stream(copula_model, [video], method=method, batch_size=8, overlap=overlap)
        path, count, found = write_csv(rows, tmp_path / f"overlap_{overlap}.csv")
        assert count == 45 and 0 < found < 45
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("overlap", [True, False])
def test_a_chunk_is_decoded_while_the_network_runs_on_the_next(setup, copula_model, tmp_path, monkeypatch,
                                                               overlap):
    """Each chunk's decoding waits until the network pass of the next chunk has started: it ends
    only when the two overlap (without overlap the wait times out, as the second case checks)."""
    import threading
    import ccnn.predict
    from ccnn.predict import predict_stream
    video = write_video(tmp_path / "clip.avi", [scene(setup["faces"][k % 6], k) for k in range(40)])
    chunks = 5  # 40 frames in chunks of 8
    started = [threading.Event() for _ in range(chunks)]
    waits = []
    network_pass = ccnn.predict.forward_faces

    def spy(*args, **kwargs):
        index = sum(event.is_set() for event in started)
        started[index].set()
        solve = network_pass(*args, **kwargs)

        def solve_after_the_next_pass_started():
            if index + 1 < chunks:
                waits.append(started[index + 1].wait(timeout=10 if overlap else 0.3))
            return solve()
        return solve_after_the_next_pass_started

    monkeypatch.setattr(ccnn.predict, "forward_faces", spy)
    rows = list(predict_stream(copula_model, [video], method="ad3", batch_size=8, overlap=overlap))
    assert len(rows) == 40 and all(r["success"] == 1 for r in rows)
    assert waits == [overlap] * (chunks - 1)
