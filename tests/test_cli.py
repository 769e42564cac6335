"""Every `ccnn` command of the model side on a tiny synthetic set (seconds each)."""
import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ccnn.checkpoint import load_model
from ccnn.cli import build_parser, main

COMMANDS = ["train", "eval", "predict", "compare", "demo"]
TRAIN_FAST = ["--image-size", "16", "--epochs", "1", "--batch-size", "8", "--samples-per-epoch", "16",
              "--ibb-unary-batches", "1", "--no-progress", "--split", "fraction:0.6"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("synth")
    disfa = generate_synthetic(root / "disfa", context="disfa", subjects=5, frames=6, seed=0, image_size=32)
    fera = generate_synthetic(root / "fera", context="fera", subjects=3, frames=6, seed=0, image_size=32)
    return {"disfa": disfa, "fera": fera, "root": root}


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "--data", str(synth["disfa"]), "--head", "ccnn", "--mode", "ibb", "--out", str(out),
                 "--cache-dir", str(synth["root"] / "cache"), *TRAIN_FAST]) == 0
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert command in capsys.readouterr().out


def test_python_dash_m_runs_the_command():
    ok = subprocess.run([sys.executable, "-m", "ccnn", "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: ccnn ")
    bad = subprocess.run([sys.executable, "-m", "ccnn", "train"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "ccnn train: error: the following arguments are required" in bad.stderr


def test_train_writes_model_report_logs_and_plots(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model.pt", "checkpoint.pt", "log.jsonl", "results.json", "results.md", "results.csv",
            "learning_curves.png", "association_graph.png"} <= names
    results = json.loads((trained / "results.json").read_text())
    (name, metrics), = results["models"].items()
    assert name == "CCNN-IT" and set(metrics) == {"icc_avg", "mae_avg", "per_au"}
    assert len(metrics["per_au"]) == 12


def test_eval_prints_the_table(trained, synth, capsys):
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained / "model.pt"), "--data", str(synth["disfa"]),
                 "--split", "fraction:0.6", "--no-progress", "--cache-dir", str(synth["root"] / "cache"),
                 "--method", "ad3", "--out", str(trained / "eval")]) == 0
    out = capsys.readouterr().out
    assert "| **ICC** |" in out and "| **MAE** |" in out
    assert "|  | 1 | 2 | 4 | 5 | 6 | 9 | 12 | 15 | 17 | 20 | 25 | 26 | avg. |" in out
    assert json.loads((trained / "eval" / "results.json").read_text())["models"]


def _write_video(path, frames):
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_predict_csv_schema_for_images_folders_and_videos(trained, synth, tmp_path, capsys):
    images = sorted((synth["disfa"] / "images").glob("*.png"))[:3]
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in images[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    video = tmp_path / "clip.avi"
    _write_video(video, [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in images])
    out = tmp_path / "au.csv"
    assert main(["predict", "--checkpoint", str(trained / "model.pt"), str(images[0]), str(folder), str(video),
                 "--out", str(out), "--annotate", str(tmp_path / "annotated")]) == 0
    rows = list(csv.DictReader(out.open()))
    aus = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
    assert list(rows[0]) == ["frame", "face_id", "timestamp", "confidence", "success", "file",
                             *[f"AU{a:02d}_r" for a in aus], *[f"AU{a:02d}_c" for a in aus]]
    assert len(rows) == 1 + 2 + 3
    assert [int(r["frame"]) for r in rows[1:3]] == [1, 2]  # a folder is numbered in sorted order
    assert [int(r["frame"]) for r in rows[3:]] == [1, 2, 3] and rows[3]["file"] == str(video)
    for r in rows:
        assert r["success"] in ("0", "1")
        values = [r[f"AU{a:02d}_r"] for a in aus]
        if r["success"] == "0":
            assert values == [""] * len(aus)  # no face: no values
        else:
            assert all(0 <= float(v) <= 5 and float(v) == int(float(v)) for v in values)
    annotated = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    # images[0] is given twice (alone and in the folder): two outputs named by their folders
    twice = [n for n in annotated if n.endswith(f"__{images[0].stem}_annotated.png")]
    assert len(twice) == 2 and any(n.endswith(f"folder__{images[0].stem}_annotated.png") for n in twice)
    assert sorted(set(annotated) - set(twice)) == [f"{images[1].stem}_annotated.png", "clip_annotated.avi"]


def test_train_with_valid_padding(synth, tmp_path, capsys):
    fast = [a if a != "16" else "64" for a in TRAIN_FAST]  # an unpadded network needs >= 64 px
    assert main(["train", "--data", str(synth["disfa"]), "--head", "ocnn", "--padding", "valid",
                 "--out", str(tmp_path / "valid"), "--cache-dir", str(synth["root"] / "cache"), *fast]) == 0
    model, _ = load_model(tmp_path / "valid" / "model.pt")
    assert model.features.padding == "valid" and model.features.fc.in_features == 128 * 1 * 1
    capsys.readouterr()
    assert main(["train", "--data", str(synth["disfa"]), "--head", "ocnn", "--padding", "valid",
                 "--out", str(tmp_path / "small"), "--cache-dir", str(synth["root"] / "cache"), *TRAIN_FAST]) == 2
    assert "at least 64 with padding='valid'" in capsys.readouterr().err


def test_predict_bad_input_is_a_clear_error(trained, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(trained / "model.pt"), str(tmp_path / "nope.png"),
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["predict", "--checkpoint", str(tmp_path / "bad.pt"), str(tmp_path),
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_compare_with_an_extra_dataset(synth, tmp_path, capsys):
    capsys.readouterr()
    assert main(["compare", "--data", str(synth["disfa"]), "--extra-data", str(synth["fera"]),
                 "--variants", "CNN,CCNN-IT(*)", "--out", str(tmp_path), "--cache-dir",
                 str(synth["root"] / "cache"), *TRAIN_FAST]) == 0
    out = capsys.readouterr().out
    assert "| CNN |" in out and "| CCNN-IT(*) |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    # the model trained with FERA predicts its AUs too, but the table keeps DISFA's
    assert len(results["models"]["CCNN-IT(*)"]["per_au"]) == 12


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["models"]) == ["CNN", "OCNN", "SCNN", "CCNN", "CCNN-IT", "CCNN-IT(*)"]
    for metrics in results["models"].values():
        assert np.isfinite(metrics["mae_avg"]) and len(metrics["per_au"]) == 12
    for name in ("learning_curves.png", "cooccurrence.png", "association_graph.png", "results.md"):
        assert (tmp_path / name).exists()
    assert "CCNN-IT(*)" in capsys.readouterr().out


def test_predict_table_has_the_rows_and_columns_of_the_csv(trained, synth, tmp_path):
    from ccnn.predict import predict_table
    images = sorted((synth["disfa"] / "images").glob("*.png"))[:3]
    video = tmp_path / "clip.avi"
    _write_video(video, [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in images])
    out = tmp_path / "au.csv"
    assert main(["predict", "--checkpoint", str(trained / "model.pt"), str(images[0]), str(video),
                 "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    table = predict_table(trained / "model.pt", [images[0], video], device="cpu")
    assert list(table.dtype.names) == list(rows[0])
    assert len(table) == len(rows) == 4
    for row, record in zip(rows, table):
        assert [str(record[c]) for c in table.dtype.names] == list(row.values())


def test_eval_uses_the_split_saved_by_train(trained, synth, capsys):
    model, payload = load_model(trained / "model.pt")
    assert payload["split"]["scheme"] == "fraction:0.6" and payload["split"]["test_subjects"]
    args = ["eval", "--checkpoint", str(trained / "model.pt"), "--data", str(synth["disfa"]), "--no-progress",
            "--cache-dir", str(synth["root"] / "cache"), "--method", "argmax"]
    capsys.readouterr()
    assert main(args) == 0
    saved = capsys.readouterr().out
    assert main([*args, "--split", "fraction:0.6"]) == 0
    assert capsys.readouterr().out == saved  # no --split: the one training used
    assert main([*args, "--split", "fraction:0.5", "--seed", "3"]) == 0
