"""The reliability suite (docs/reliability.md): bad input ends as one clear CLI error, run folders are
locked and checked, checkpoints verify themselves, a stale best.pt is never loaded, a resume with other
settings is refused, and a kill -9 during training or during a save loses nothing (the resumed run
equals an uninterrupted one). Bounded: well under two minutes on two cores."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
import torch

from ccnn.checkpoint import CheckpointError, load_checkpoint, load_model, save_model
from ccnn.cli import main
from ccnn.model_setup import build_model
from ccnn.run_folder import RunFolderError, open_run
from ccnn.trainer import TrainConfig, Trainer, fit
from train_toy_data import toy_faces

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}


def _config(**kw):
    base = dict(epochs=1, batch_size=16, samples_per_epoch=32, progress=False, train_eval_samples=24,
                eval_batch_size=32, lr=0.01, seed=3, prune_threshold=0.0)
    return TrainConfig(**{**base, **kw})


def _data():
    return [toy_faces("a", (1, 2, 4), seed=1)], [toy_faces("a", (1, 2, 4), subjects=2, seed=5)]


def ccnn(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "ccnn.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train, val = _data()
    fit(build_model("ordinal", train, seed=0), train, val, _config(), out)
    return out / "model.pt"


# ---- one error path: parse-time option checks (argparse, in-process: no torch start-up per case) --------
PARSE_CASES = [
    (["train", "--data", "d", "--out", "o", "--val-fraction", "-0.5"], "--val-fraction", "in [0, 1)"),
    (["train", "--data", "d", "--out", "o", "--samples-per-epoch", "0"], "--samples-per-epoch", ">= 1"),
    (["train", "--data", "d", "--out", "o", "--momentum", "2"], "--momentum", "in [0, 1)"),
    (["train", "--data", "d", "--out", "o", "--grad-clip", "-1"], "--grad-clip", "'none'"),
    (["train", "--data", "d", "--out", "o", "--prune-threshold", "inf"], "--prune-threshold", "not finite"),
    (["train", "--data", "d", "--out", "o", "--seed", "-1"], "--seed", ">= 0"),
    (["train", "--data", "d", "--out", "o", "--device", "tpu"], "--device", "cpu, cuda"),
    (["predict", "--checkpoint", "m.pt", "x.png", "--out", "a.csv", "--time-limit", "-1"], "--time-limit", "> 0"),
    (["preprocess", "d", "--size", "100000"], "--size", "in [8, 1024]"),
    (["synth", "--out", "o", "--subjects", "0"], "--subjects", ">= 1"),
]


@pytest.mark.parametrize("argv, flag, expected", PARSE_CASES, ids=[c[1] for c in PARSE_CASES])
def test_bad_option_values_fail_at_parse_time_naming_the_flag(argv, flag, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"ccnn {argv[0]}: error: argument {flag}" in err and expected in err, err


@pytest.mark.parametrize("variants, expected", [("", "expected one or more model names"),
                                                  ("CNN,cnn", "'cnn' names a model already in the list")])
def test_compare_variants_must_name_distinct_models(variants, expected, tmp_path, capsys):
    """--variants "" trained nothing and printed an empty table (exit 0); a model named twice was
    trained twice into one folder and one table row."""
    assert main(["compare", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--variants", variants]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_ranges_show_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("in [0, 1) (0: none)", "training set size", "'none'", "finite >= 0", "--allow-changed-settings"):
        assert text in out


# ---- one error path: run-time failures in a real process (exit 2, the message, no traceback) -----------
def _check_error(result, command, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ccnn {command}: error: "), result.stderr
    for needle in needles:
        assert needle in last, last


def _runtime_case(name, tmp, model):
    image = tmp / "thin.png"
    cv2.imwrite(str(image), np.full((1, 5000), 128, np.uint8))
    face = tmp / "face.png"
    cv2.imwrite(str(face), np.full((40, 40), 128, np.uint8))
    (tmp / "a_file").write_text("x")
    (tmp / "a_dir").mkdir(exist_ok=True)
    return {
        "thin image": (["predict", "--checkpoint", model, image, "--out", tmp / "o.csv"],
                       ["thin.png", "5000x1 pixels"]),
        "--out is a folder": (["predict", "--checkpoint", model, face, "--out", tmp / "a_dir"],
                              ["a_dir", "folder where a file is expected"]),
        "--annotate is a file": (["predict", "--checkpoint", model, face, "--out", tmp / "o.csv",
                                  "--annotate", tmp / "a_file"], ["a_file", "file stands where a folder"]),
        "--checkpoint is a folder": (["predict", "--checkpoint", tmp / "a_dir", face, "--out", tmp / "o.csv"],
                                     ["a_dir", "is a folder, not a file"]),
        "train --out is a file": (["train", "--data", tmp / "nothing", "--out", tmp / "a_file"],
                                  ["a_file", "is a file; give --out a folder"]),
        "--data is a PNG": (["preprocess", face], ["face.png", "binary file"]),
    }[name]


RUNTIME_CASES = ["thin image", "--out is a folder", "--annotate is a file", "--checkpoint is a folder",
                 "train --out is a file", "--data is a PNG"]


@pytest.mark.parametrize("case", RUNTIME_CASES)
def test_user_errors_end_as_one_message_without_traceback(case, model_file, tmp_path):
    argv, needles = _runtime_case(case, tmp_path, model_file)
    _check_error(ccnn(*argv), argv[0], *needles)


def test_debug_shows_the_traceback(tmp_path):
    result = ccnn("predict", "--checkpoint", tmp_path, tmp_path, "--out", tmp_path / "o.csv", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr and "CheckpointError" in result.stderr


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("synth")
    return generate_synthetic(root / "fera", context="fera", subjects=4, frames=4, image_size=32), root


def test_disk_full_while_saving_is_a_message_and_keeps_the_last_checkpoint(synth, tmp_path, monkeypatch,
                                                                           capsys):
    import ccnn.checkpoint as checkpoint
    data, root = synth
    out = tmp_path / "run"
    real = checkpoint.os.fsync

    def full_after_first_checkpoint(fd):
        if (out / "checkpoint.pt").exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)
    monkeypatch.setattr(checkpoint.os, "fsync", full_after_first_checkpoint)
    assert main(["train", "--data", str(data), "--out", str(out), "--head", "ocnn", "--image-size", "16",
                 "--epochs", "2", "--batch-size", "8", "--val-fraction", "0", "--split", "fraction:0.5",
                 "--no-progress", "--cache-dir", str(root / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ccnn train: error: no space left on device: ") and "free some disk space" in err
    assert str(out) in err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 0 and not list(out.glob("*.tmp"))


def test_permission_denied_is_not_called_corrupt(model_file, monkeypatch):
    """A checkpoint with mode 000 (simulated: the tests may run as root, who reads anything)."""
    import pathlib

    def denied(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))
    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    with pytest.raises(CheckpointError, match="permission denied") as info:
        load_model(model_file)
    assert "corrupt" not in str(info.value)


def test_two_subjects_suggest_val_fraction_zero(tmp_path, capsys):
    from ccnn.data import generate_synthetic
    data = generate_synthetic(tmp_path / "two", context="fera", subjects=2, frames=3, image_size=32)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress",
                 "--image-size", "16", "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--val-fraction 0" in capsys.readouterr().err


def test_duplicate_csv_rows_are_counted(tmp_path):
    from ccnn.experiment import load_data
    (tmp_path / "f.png").write_bytes(cv2.imencode(".png", np.zeros((40, 40), np.uint8))[1].tobytes())
    (tmp_path / "g.png").write_bytes((tmp_path / "f.png").read_bytes())
    rows = ["image,subject,AU06,AU12", "f.png,s1,0,1", "g.png,s2,1,0", "f.png,s1,0,1", "f.png,s1,0,1"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="2 duplicate rows"):
        ds = load_data(tmp_path / "labels.csv")
    assert any("2 duplicate rows" in issue for issue in ds.issues)


def test_nothing_labelled_fails_with_a_message():
    train, val = _data()
    train[0].labels[:] = -1
    with pytest.raises(ValueError, match="training faces hold no labels"):
        Trainer(build_model("ordinal", _data()[0], seed=0), train, val, _config())
    train, val = _data()
    val[0].labels[:] = -1
    with pytest.raises(ValueError, match="--val-fraction 0"):
        Trainer(build_model("ordinal", train, seed=0), train, val, _config())


# ---- run folders -----------------------------------------------------------------------------------------
def test_a_second_run_on_a_locked_folder_fails_at_once(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ccnn.run_folder import run_lock\n"
                               f"with run_lock({str(tmp_path)!r}):\n print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        assert main(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert time.perf_counter() - start < 5
        assert "in use by another ccnn run" in err and f"pid {holder.pid}" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # a killed owner leaves no lock behind
    from ccnn.run_folder import run_lock
    with run_lock(tmp_path):
        pass


def test_byte_flips_in_a_checkpoint_are_rejected(model_file, tmp_path):
    data = model_file.read_bytes()
    rng = np.random.default_rng(0)
    positions = rng.integers(len(data) // 10, len(data) * 9 // 10, size=40)
    for k, pos in enumerate(positions):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"flip{k}.pt"
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match="corrupt"):
            load_checkpoint(path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


def test_a_stale_best_pt_never_becomes_the_model(tmp_path, monkeypatch):
    train, val = _data()
    first = fit(build_model("ordinal", train, seed=0), train, val, _config(), tmp_path)
    (tmp_path / "checkpoint.pt").unlink()  # the new run starts afresh; the old best.pt is left over
    import ccnn.trainer as trainer_module
    real = trainer_module.Trainer.evaluate_set

    def nan_icc(self, *args):
        return {**real(self, *args), "icc_avg": float("nan")}  # validation ICC is NaN every epoch
    monkeypatch.setattr(trainer_module.Trainer, "evaluate_set", nan_icc)
    second = fit(build_model("ordinal", train, seed=7), train, val, _config(seed=9), tmp_path)
    assert second.best_epoch is None
    saved, _ = load_model(tmp_path / "model.pt")
    for (name, a), b, c in zip(saved.state_dict().items(), second.model.state_dict().values(),
                               first.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(b, c) for b, c in zip(second.model.state_dict().values(),
                                                     first.model.state_dict().values()))


@pytest.mark.parametrize("change", [{"lr": 0.02}, {"mode": "ibb"}])
def test_resume_with_changed_settings_is_refused_unless_allowed(tmp_path, change):
    train, val = _data()
    fit(build_model("copula", train, seed=0), train, val, _config(), tmp_path)
    (name, value), = change.items()
    with pytest.raises(RunFolderError, match=f"--{name} .* -> {value!r}.*--allow-changed-settings"):
        fit(build_model("copula", train, seed=0), train, val, _config(**change), tmp_path)
    fit(build_model("copula", train, seed=0), train, val, _config(**change, epochs=2), tmp_path,
        allow_changed_settings=True)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["settings"][name] == value and name in manifest["changes"][0]["changes"]
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["changes"] for e in events if e["event"] == "settings_changed"][0][name][1] == value


@pytest.mark.parametrize("damage", ["{not json", "settings", "changes", "run_id", "model_hash"])
def test_a_damaged_run_json_blocks_resuming_by_name_but_not_a_fresh_start(tmp_path, damage):
    manifest, _, _ = open_run(tmp_path, {"head": "copula"}, TrainConfig(), "data")
    (tmp_path / "checkpoint.pt").write_bytes(b"a checkpoint")
    text = damage if damage.startswith("{") else json.dumps({**manifest, damage: None})
    (tmp_path / "run.json").write_text(text)
    needle = "damaged" if damage.startswith("{") else f"damaged .*'{damage}' is None, expected"
    with pytest.raises(RunFolderError, match=needle + ".*--no-resume"):
        open_run(tmp_path, {"head": "copula"}, TrainConfig(), "data", allow_changed_settings=True)
    fresh, changes, resuming = open_run(tmp_path, {"head": "copula"}, TrainConfig(), "data", resume=False)
    assert not resuming and not changes and fresh["run_id"] != manifest["run_id"]
    assert json.loads((tmp_path / "run.json").read_text())["run_id"] == fresh["run_id"]
    assert not (tmp_path / "checkpoint.pt").exists()  # (the earlier run's model files go)


def test_a_model_file_of_another_run_is_refused(model_file, tmp_path):
    folder = model_file.parent
    other = tmp_path / "model.pt"
    model, payload = load_model(model_file)
    save_model(other, model, run_id="0" * 32)
    (tmp_path / "run.json").write_text((folder / "run.json").read_text())
    with pytest.raises(RunFolderError, match="another run"):
        load_model(other)


def test_fake_ops_check_devices_like_the_real_ones():
    import ccnn_ext  # noqa: F401  (registers the ops)
    z, theta, edges = torch.empty(2, 3, 5, device="meta"), torch.zeros(1), torch.tensor([[0, 1]])
    with pytest.raises(ValueError, match="theta must be on the device of z"):
        torch.ops.ccnn.pairwise_logtable(z, theta, edges, "probit")
    labels = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="theta must be on the device of z"):
        torch.ops.ccnn.pairwise_loglik(z, theta, edges, labels, "probit")
    with pytest.raises(ValueError, match="v must be on the device of u"):
        torch.ops.ccnn.frank_copula(torch.empty(3, device="meta"), torch.rand(3), torch.zeros(3))


# ---- kill -9 during training and during a save, then resume ----------------------------------------------
TRAIN_SCRIPT = textwrap.dedent("""
    import os, signal, sys, json
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    import ccnn.checkpoint as checkpoint, ccnn.trainer as trainer
    from ccnn.model_setup import build_model
    from ccnn.trainer import TrainConfig, fit
    from train_toy_data import toy_faces
    kill, count = os.environ.get("KILL", ""), {{"step": 0, "save": 0}}
    real_nll, real_replace = trainer.composite_nll, checkpoint.os.replace
    def nll(*a, **k):
        count["step"] += 1
        if kill == "step" and count["step"] == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_nll(*a, **k)
    def replace(src, dst):
        count["save"] += 1 if str(dst).endswith("checkpoint.pt") else 0
        if kill == "save" and count["save"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)   # the temporary is written, checkpoint.pt not replaced
        return real_replace(src, dst)
    trainer.composite_nll, checkpoint.os.replace = nll, replace
    train, val = [toy_faces("a", (1, 2, 4), seed=1)], [toy_faces("a", (1, 2, 4), subjects=2, seed=5)]
    config = TrainConfig(epochs=3, batch_size=16, samples_per_epoch=32, progress=False, lr=0.01, seed=3,
                         train_eval_samples=24, eval_batch_size=32, prune_threshold=0.0, mode="joint")
    fit(build_model("copula", train, seed=0), train, val, config, sys.argv[1])
""")


def _train(script, out, kill=""):
    return subprocess.run([sys.executable, str(script), str(out)], env={**ENV, "KILL": kill},
                          capture_output=True, text=True, timeout=120)


def _numbers(folder):
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in records]


@pytest.mark.parametrize("kill", ["step", "save"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path_factory, kill):
    root = tmp_path_factory.getbasetemp() / "kill9"
    root.mkdir(exist_ok=True)
    script = root / "train.py"
    script.write_text(TRAIN_SCRIPT.format(tests=os.path.dirname(__file__)))
    reference = root / "reference"
    if not (reference / "model.pt").exists():
        assert _train(script, reference).returncode == 0
    out = tmp_path_factory.mktemp(f"killed-{kill}")
    killed = _train(script, out, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    if kill == "save":
        assert list(out.glob("checkpoint.pt.*.tmp")), "the interrupted save should leave its temporary"
    resumed = _train(script, out)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.glob("*.tmp"))
    run_id = json.loads((out / "run.json").read_text())["run_id"]  # every artefact is this run's
    assert {load_checkpoint(out / n)["run_id"] for n in ("checkpoint.pt", "best.pt", "model.pt")} == {run_id}
    assert _numbers(out) == _numbers(reference)
    a, _ = load_model(out / "model.pt")
    b, _ = load_model(reference / "model.pt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_exact_decoding_is_bounded_and_uncertified_frames_are_reported(monkeypatch):
    import ccnn.inference as inference
    from collections import Counter
    train, _ = _data()
    model = build_model("copula", train, seed=0).eval()
    seen = {}
    real = inference.ccnn_ext.decode_exact

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(inference.ccnn_ext, "decode_exact", recording)
    options = inference.DecodeOptions(method="exact", time_limit=0.5)
    faces = train[0]
    inference.infer_faces(model, [faces], 1.0, options)
    assert seen["time_limit"] == 0.5 and sum(options.status_counts.values()) == len(faces.labels)
    assert inference.uncertified_report(options) == ""  # tiny problems: all certified
    options.status_counts = Counter(optimal=7, time_limit=3)
    text = inference.uncertified_report(options)
    assert "3 of 10 frames not certified" in text and "time_limit: 3" in text and "--time-limit" in text
