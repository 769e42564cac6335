"""Data-parallel training under torchrun (2 processes, gloo, CPU) on a tiny synthetic set, against a
single-process run of the same global batch and seed; a killed or stuck process; resuming.

Tolerance of "the same run" across process counts: both runs draw the same global batches and take the
same steps, but the gradient of a batch is summed in another order (each process sums its part, then
the parts are added), and float32 rounds each order differently: a few units of 2^-24 (6e-8) relative
per gradient. Through the few hundred SGD steps with momentum of these runs (IBB: CNN, unary and pairwise
steps) this grows to a few 1e-6 of a tensor's scale (measured: 4e-6 at worst, on pairwise parameters,
which train at 300x the learning rate). The tests allow 1e-4 of each tensor's largest magnitude (floored
at 1e-2), 25 times that, and check that training on the wrong batches (one process's part alone, what
N independent copies would do) lands far outside it (measured: 11, 1e5 times the tolerance).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ddp_exchange
from ccnn.checkpoint import load_checkpoint
from ccnn.cli import main
from ccnn.data.samplers import EpochShuffleSampler, RankShare, SubjectBalancedSampler
from ccnn.distributed import launch_from_env

FAST = ["--image-size", "16", "--batch-size", "8", "--samples-per-epoch", "20", "--ibb-unary-batches", "1",
        "--ibb-pairwise-batches", "1", "--no-progress", "--split", "fraction:0.6",
        "--prune-threshold", "0"]
TOLERANCE = 1e-4  # of each tensor's largest magnitude (floored at 1e-2): see the module docstring


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}


def _torchrun(args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "ccnn.cli", *args]


def _run(args, nproc=2, timeout=240):
    return subprocess.run(_torchrun(args, nproc), capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("synth")
    disfa = generate_synthetic(root / "disfa", context="disfa", subjects=5, frames=8, seed=0, image_size=32,
                               workers=1)
    fera = generate_synthetic(root / "fera", context="fera", subjects=3, frames=8, seed=1, image_size=32,
                              workers=1)
    return {"disfa": str(disfa), "fera": str(fera), "cache": str(root / "cache")}


def _state(folder):
    return load_checkpoint(Path(folder) / "checkpoint.pt")["model_state"]


def _worst_difference(a, b) -> float:
    """The largest |a - b| of any tensor, relative to that tensor's largest magnitude (floored at 1e-2)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for name in a:
        if a[name].is_floating_point():
            scale = max(a[name].abs().max().item(), 1e-2)
            worst = max(worst, (a[name] - b[name]).abs().max().item() / scale)
    return worst


def _log(folder):
    return [json.loads(line) for line in (Path(folder) / "log.jsonl").read_text().splitlines()]


# ---- the samplers' shares ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: EpochShuffleSampler(13, 29, seed=4),
                                  lambda: SubjectBalancedSampler(np.repeat(list("abc"), [2, 5, 9]), 30, seed=1)])
def test_rank_shares_partition_every_global_batch(make):
    whole = make()
    whole.set_epoch(3)
    order = list(whole)
    for world in (1, 2, 4):
        shares = [RankShare(make(), 8, r, world) for r in range(world)]
        for s in shares:
            s.set_epoch(3)
        streams = [list(s) for s in shares]
        assert [len(s) for s in streams] == [len(s) for s in shares]
        local = 8 // world
        for step, start in enumerate(range(0, len(order), 8)):  # rank r's step-th chunk is its part
            parts = [stream[step * local:(step + 1) * local] for stream in streams]
            assert sum(parts, []) == order[start:start + 8]
        assert {s.steps() for s in shares} == {-(-len(order) // 8)}


def test_rank_share_needs_a_batch_divisible_by_the_processes():
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        RankShare(EpochShuffleSampler(10, 10, 0), 6, 0, 4)


def test_launch_environment_is_read_and_checked():
    assert launch_from_env({}) is None
    assert launch_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).rank == 1
    with pytest.raises(ValueError, match="incomplete torchrun environment"):
        launch_from_env({"RANK": "0"})
    with pytest.raises(ValueError, match="RANK < WORLD_SIZE"):
        launch_from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_commands_that_run_in_one_process_refuse_torchrun(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 2
    assert "ccnn demo runs in one process: launch it without torchrun" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--batch-size", "9"]) == 2
    assert "--batch-size 9 (the global batch) must be a multiple of the number of processes, 2" in \
        capsys.readouterr().err


# ---- the gradient exchange, exactly (float64, 2 spawned gloo processes) --------------------------------------
def test_the_exchanged_gradient_is_the_whole_batch_gradient(tmp_path):
    """For the whole model and for one IBB group, full and short batches (rank 1's part empty): the
    weighted sum over the processes is the one-process gradient of the batch, to float64 rounding; a
    parameter without a gradient anywhere keeps none."""
    torch.multiprocessing.spawn(ddp_exchange.worker, args=(_free_port(), tmp_path / "g"), nprocs=2)
    got = [torch.load(tmp_path / f"g.{rank}") for rank in (0, 1)]
    for size, name in ddp_exchange.CASES:
        model, images, labels, index = ddp_exchange.problem()
        params = ddp_exchange.group(model, name)
        loss = ddp_exchange.loss_of(model, images[:size], labels[:size], index[:size])
        loss.total.backward(inputs=params)
        for rank in (0, 1):
            case = got[rank][size, name]
            assert case["values"][0].item() == pytest.approx(loss.total.item(), rel=1e-13)
            for p, g in zip(params, case["grads"]):
                if p.grad is None:
                    assert g is None
                else:
                    torch.testing.assert_close(g, p.grad, rtol=1e-12, atol=1e-15)


# ---- torchrun against one process -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ibb_several(synth, tmp_path_factory):
    """IBB training on two datasets: 2 processes (torchrun) and one process, same global batch."""
    root = tmp_path_factory.mktemp("ibb")
    args = ["train", "--data", synth["disfa"], "--extra-data", synth["fera"], "--head", "ccnn", "--mode",
            "ibb", "--epochs", "3", "--cache-dir", synth["cache"], *FAST]
    run = _run([*args, "--out", str(root / "two")])
    assert run.returncode == 0, run.stderr[-3000:]
    assert main([*args, "--out", str(root / "one")]) == 0
    return root, args, run


def test_two_processes_train_one_run_like_one_process(ibb_several):
    root, _, run = ibb_several
    two = root / "two"
    assert "data parallel: 2 processes (gloo), global batch 8 = 2 x 4, world_size 2" in run.stderr
    assert run.stderr.count("epoch 3/3:") == 1  # rank 0 alone logs
    assert sorted(p.name for p in two.iterdir() if p.suffix in (".pt", ".tmp", ".jsonl")) == \
        ["best.pt", "checkpoint.pt", "log.jsonl", "model.pt"]
    log = _log(two)
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [0, 1, 2]  # once, not once per process
    assert {r["world_size"] for r in log if r["event"] in ("epoch", "end")} == {2}
    assert json.loads((two / "results.json").read_text())["world_size"] == 2
    assert json.loads((root / "one" / "results.json").read_text())["world_size"] == 1
    # the same steps: the logged loss of every step, and the final parameters
    steps = [[r["total"] for r in _log(folder) if r["event"] == "step"] for folder in (two, root / "one")]
    assert len(steps[0]) == len(steps[1]) == 9
    np.testing.assert_allclose(steps[0], steps[1], rtol=TOLERANCE)
    assert _worst_difference(_state(root / "one"), _state(two)) < TOLERANCE


def test_the_tolerance_tells_a_wrong_batch_apart(ibb_several, tmp_path):
    """One process training on half the global batch (what each of N independent copies would do)
    lands far outside the tolerance: the comparison above can fail."""
    root, args, _ = ibb_several
    half = [a if a != "8" else "4" for a in args]
    assert main([*half, "--out", str(tmp_path / "half")]) == 0
    assert _worst_difference(_state(root / "one"), _state(tmp_path / "half")) > 100 * TOLERANCE


def test_compare_joint_and_ibb_on_one_and_several_datasets(synth, tmp_path):
    args = ["compare", "--data", synth["disfa"], "--extra-data", synth["fera"], "--variants",
            "CCNN,CCNN(*),CCNN-IT", "--epochs", "1", "--cache-dir", synth["cache"], *FAST]
    run = _run([*args, "--out", str(tmp_path / "two")])
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("| CCNN(*) |") == 2  # rank 0 alone prints the table (ICC and MAE rows)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    for variant in ("ccnn", "ccnn-multi", "ccnn-it"):
        one, two = tmp_path / "one" / variant, tmp_path / "two" / variant
        assert _worst_difference(_state(one), _state(two)) < TOLERANCE, variant
        # validation and test metrics come from predictions of all processes, decoded in parts
        val = [[r["val"]["mae_avg"] for r in _log(f) if r["event"] == "epoch"] for f in (one, two)]
        np.testing.assert_allclose(val[0], val[1], rtol=1e-6)
    results = [json.loads((tmp_path / f / "results.json").read_text()) for f in ("one", "two")]
    assert results[1]["world_size"] == 2
    for name, metrics in results[0]["models"].items():
        assert metrics["mae_avg"] == pytest.approx(results[1]["models"][name]["mae_avg"], rel=1e-6)


# ---- failures and resuming --------------------------------------------------------------------------------
def _worker(launcher_pid: int, rank: int) -> int:
    """The pid of the torchrun worker of `rank` (a child of the launcher with RANK=rank)."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    for pid in map(int, children):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return pid
    raise AssertionError(f"no worker of rank {rank} among {children}")


def _wait_for(path: Path, proc, limit=180.0):
    end = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the workers through /proc")
def test_a_killed_process_ends_the_job_and_the_run_resumes(ibb_several):
    """Rank 1 killed after the first epoch: the job ends at once with torchrun's report. The run then
    resumes from its checkpoint on 2 processes, to exactly the uninterrupted 2-process run, and on one
    process (another world size: the same batches), to the 1-process run within the tolerance."""
    root, args, _ = ibb_several
    cut = root / "cut"
    proc = subprocess.Popen(_torchrun([*args, "--out", str(cut), "--dist-timeout", "20"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(cut / "checkpoint.pt", proc)
    os.kill(_worker(proc.pid, 1), signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - killed < 20, "the job outlived the timeout"
    assert proc.returncode != 0
    assert "Signal 9 (SIGKILL)" in err or "lost the other processes" in err, err[-3000:]
    done = load_checkpoint(cut / "checkpoint.pt")["epoch"] + 1
    assert done < 3, "the kill came too late to test resuming"
    shutil.copytree(cut, root / "cut-one")

    run = _run([*args, "--out", str(cut)])  # the same world size: exactly the uninterrupted run
    assert run.returncode == 0, run.stderr[-3000:]
    for (name, a), b in zip(_state(root / "two").items(), _state(cut).values()):
        assert torch.equal(a, b), name
    strip = [[{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in _log(f)]
             for f in (root / "two", cut)]
    assert strip[0] == strip[1]

    assert main([*args, "--out", str(root / "cut-one")]) == 0  # one process: the same schedule
    assert _worst_difference(_state(root / "one"), _state(root / "cut-one")) < TOLERANCE
    assert [r["world_size"] for r in _log(root / "cut-one") if r["event"] == "epoch"] == [2] * done + [1] * (3 - done)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stuck_process_ends_the_others_within_the_timeout(ibb_several, tmp_path):
    """Without torchrun's watchdog (processes started by hand, as a scheduler might): one process stops
    answering (SIGSTOP); the other gives up after --dist-timeout with a clear error."""
    _, args, _ = ibb_several
    port = _free_port()
    longer = [{"3": "50", "ibb": "joint"}.get(a, a) for a in args]  # joint: the first epoch ends sooner
    procs = []
    for rank in (0, 1):
        env = {**_env(), "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-m", "ccnn.cli", *longer, "--out",
                                       str(tmp_path / "stuck"), "--dist-timeout", "5"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    try:
        _wait_for(tmp_path / "stuck" / "checkpoint.pt", procs[0])
        os.kill(procs[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = procs[0].communicate(timeout=60)
        assert time.monotonic() - stopped < 5 + 20
        assert procs[0].returncode == 1
        assert "ccnn train: error: process 0 of 2 lost the other processes of the run" in err, err[-3000:]
    finally:
        for p in procs:
            p.kill()
            p.communicate()
