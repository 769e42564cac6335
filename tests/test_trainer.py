import json
import math

import numpy as np

import pytest
import torch

from ccnn.checkpoint import CheckpointError, load_checkpoint, load_model, save_model
from ccnn.model_setup import build_model
from ccnn.run_folder import RunFolderError
from ccnn.pruning import AllEdgesPruned
from ccnn.trainer import TrainConfig, Trainer, TrainingDiverged, fit
from train_toy_data import toy_faces


def _config(**kw):
    base = dict(epochs=2, batch_size=16, samples_per_epoch=32, ibb_unary_batches=1,
                ibb_pairwise_batches=1, progress=False, train_eval_samples=24, eval_batch_size=32,
                lr=0.01, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _data():
    train = [toy_faces("a", (1, 2, 4), seed=1), toy_faces("b", (2, 4, 6), subjects=3, seed=2)]
    val = [toy_faces("a", (1, 2, 4), subjects=2, seed=5)]
    return train, val


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(before, params):
    return [not torch.equal(b, p.detach()) for b, p in zip(before, params)]


def test_each_ibb_step_updates_only_its_parameter_group():
    train, val = _data()
    model = build_model("copula", train, seed=0)
    trainer = Trainer(model, train, val, _config(mode="ibb"))
    groups = {"cnn": model.cnn_parameters(),
              **{f"unary{q}": model.unary_parameters(q) for q in range(len(model.aus))},
              **{f"pair{k}": model.pairwise_parameters(k) for k in range(len(model.pairwise))}}
    everything = [p for g in groups.values() for p in g]
    assert len(everything) == len(list(model.parameters()))

    def check(run, target):
        before = _snapshot(everything)
        run()
        changed = dict(zip(map(id, everything), _changed(before, everything)))
        for name, params in groups.items():
            moved = [changed[id(p)] for p in params]
            if name == target:
                assert any(moved), f"step for {target} did not update it"
            else:
                assert not any(moved), f"step for {target} changed {name}"

    trainer.train_set.set_epoch(0)
    # step 1: CNN weights on subject-balanced batches
    check(lambda: trainer._train_cnn_batches(0, model.cnn_parameters(), "cnn", lambda r: None), "cnn")
    cache = trainer._cache_features()
    # step 2: one AU's unary parameters on level-balanced batches (twice: momentum must stay local)
    for _ in range(2):
        check(lambda: trainer._train_head_batches(trainer.unary_samplers[1], 0, model.unary_parameters(1),
                                                  cache), "unary1")
    # step 3: one edge's theta on pair-balanced batches
    k = model.pairwise_slots().index((0, 0, 1))
    check(lambda: trainer._train_head_batches(trainer.pairwise_samplers[k], 0, model.pairwise_parameters(k),
                                              cache), f"pair{k}")


def test_ibb_epoch_runs_every_step_on_several_datasets(tmp_path):
    train, val = _data()
    model = build_model("copula", train, seed=0)
    result = fit(model, train, val, _config(mode="ibb", epochs=1, prune_threshold=0.0), tmp_path)
    assert len(result.history) == 1
    # every pairwise parameter moved away from its start at 0 (each edge got its own step)
    assert all(abs(v) > 0 for d in model.association().values() for v in d.values())


def _strip_times(history):
    return [{k: v for k, v in rec.items() if k not in ("seconds", "images_per_s")} for rec in history]


def _same_numbers(a, b):
    return json.dumps(_strip_times(a), sort_keys=True) == json.dumps(_strip_times(b), sort_keys=True)


@pytest.mark.parametrize("mode", ["joint", "ibb"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, monkeypatch, mode):
    train, val = _data()
    config = _config(mode=mode, epochs=3, prune_threshold=0.0, lr_schedule="cosine", pairwise_lr_scale=3.0,
                     ibb_reweight=True)
    import ccnn.trainer as trainer_module
    real = trainer_module.composite_nll
    calls = {"n": 0, "die_at": None}

    def counting(*args, **kw):
        calls["n"] += 1
        if calls["n"] == calls["die_at"]:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(trainer_module, "composite_nll", counting)
    reference = fit(build_model("copula", train, seed=0), train, val, config, tmp_path / "full")

    # the same run, killed in the middle of its third epoch ...
    calls.update(die_at=calls["n"] * 5 // 6, n=0)
    with pytest.raises(KeyboardInterrupt):
        fit(build_model("copula", train, seed=0), train, val, config, tmp_path / "cut")
    calls["die_at"] = None
    done = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"]
    assert done == 1, "the interruption should hit the last epoch"
    # a log line that is JSON but not an object (an edit) and one cut short are dropped on resume
    # (the first raised AttributeError before)
    with open(tmp_path / "cut" / "log.jsonl", "a") as log_file:
        log_file.write('[1, 2]\n{"event": "step", "epo')

    # ... and resumed from its last checkpoint by a fresh process-like start (new model object)
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = fit(build_model("copula", train, seed=0), train, val, config, tmp_path / "cut")
    assert _same_numbers(reference.history, resumed.history)
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    full_log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log] == [r["event"] for r in full_log]
    assert [r.get("total") for r in log] == [r.get("total") for r in full_log]


def test_training_lowers_the_loss_and_writes_its_files(tmp_path):
    train, val = _data()
    model = build_model("ordinal", train, seed=0)
    result = fit(model, train, val, _config(epochs=4, samples_per_epoch=64), tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"checkpoint.pt", "best.pt", "model.pt", "log.jsonl"}
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 4 and len(steps) == 16 and records[-1]["event"] == "end"
    assert epochs[-1]["train"]["nll"] < epochs[0]["train"]["nll"]
    assert set(epochs[0]["val"]) == {"nll", "icc_avg", "mae_avg", "per_au"}
    loaded, payload = load_model(tmp_path / "model.pt")
    assert loaded.config() == result.model.config()
    assert payload["best_epoch"] == result.best_epoch


def test_early_stopping(tmp_path):
    train, val = _data()
    model = build_model("ordinal", train, seed=0)
    result = fit(model, train, val, _config(epochs=10, patience=2, lr=1e-12), tmp_path)
    # with a vanishing learning rate nothing improves after the first epoch
    assert len(result.history) == 3 and result.best_epoch == 0


def test_early_stopping_waits_for_min_epochs(tmp_path):
    train, val = _data()
    model = build_model("ordinal", train, seed=0)
    result = fit(model, train, val, _config(epochs=10, patience=2, min_epochs=6, lr=1e-12), tmp_path)
    assert len(result.history) == 6 and result.best_epoch == 0


def test_pruning_after_training(tmp_path):
    train, val = _data()
    model = build_model("copula", train, seed=0)
    with pytest.warns(AllEdgesPruned, match="pruning removed all 3 edges of a"):
        result = fit(model, train, val, _config(epochs=1, prune_threshold=1e9), tmp_path)
    assert result.model.edges.shape[0] == 0 and result.edges == {"a": (0, 3), "b": (0, 3)}
    assert load_model(tmp_path / "model.pt")[0].edges.shape[0] == 0


def test_corrupt_or_truncated_checkpoints_give_clear_errors(tmp_path):
    train, _ = _data()
    model = build_model("copula", train, seed=0)
    good = save_model(tmp_path / "good.pt", model)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 50)
    for name in ("truncated.pt", "garbage.pt"):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_model(tmp_path / name)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ccnn checkpoint"):
        load_model(tmp_path / "other.pt")
    # pickled code is never executed: weights_only refuses arbitrary objects
    torch.save({"format": "ccnn-checkpoint", "payload": math.isclose}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "code.pt")
    loaded, _ = load_model(good)
    assert loaded.config() == model.config()


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    train, val = _data()
    fit(build_model("copula", train, seed=0), train, val, _config(epochs=1), tmp_path)
    for allow in (False, True):  # another model can never continue the run
        with pytest.raises(RunFolderError, match="another model .*head 'ordinal'"):
            fit(build_model("ordinal", train, seed=0), train, val, _config(epochs=2), tmp_path,
                allow_changed_settings=allow)


def test_balance_weights_undo_the_balancing():
    from ccnn.data.samplers import balance_weights
    keys = np.array([0, 0, 0, 1, -1, 2, 2, 5])
    weights = balance_weights(keys, [(0, 0, 4), (1, 4, 8)])
    # block 1: 3/4 zeros and 1/4 ones over 2 levels; block 2: 2/3 twos and 1/3 fives
    assert np.allclose(weights, [1.5, 1.5, 1.5, 0.5, 0.0, 4 / 3, 4 / 3, 2 / 3])
    # under the balanced draw (each observed key equally likely) the weights average to 1 per key
    for a, b in [(0, 4), (4, 8)]:
        block = keys[a:b]
        for key in np.unique(block[block >= 0]):
            share = (block == key).mean() / (block >= 0).mean()
            assert weights[a:b][block == key][0] == pytest.approx(share * len(np.unique(block[block >= 0])))


def test_learning_rate_schedule():
    train, val = _data()
    trainer = Trainer(build_model("copula", train), train, val,
                      _config(epochs=4, lr=0.1, lr_schedule="cosine", pairwise_lr_scale=10))
    rates = []
    for epoch in range(4):
        trainer._set_learning_rate(epoch)
        rates.append([g["lr"] for g in trainer.optimizer.param_groups])
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert np.allclose([r[0] for r in rates], expected)
    assert np.allclose([r[1] for r in rates], [10 * e for e in expected])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        _config(mode="sgd").validate()
    with pytest.raises(ValueError, match="batch_size"):
        _config(batch_size=0).validate()
    # the command line's ranges hold for TrainConfig built in Python too (they were unchecked there)
    for bad, name in ((dict(momentum=1.5), "momentum"), (dict(lr=float("inf")), "lr"), (dict(epochs=2.5), "epochs"),
                      (dict(grad_clip=0.0), "grad_clip"), (dict(l2=[0.1, -1.0]), "l2"),
                      (dict(pairwise_weight=float("nan")), "pairwise_weight"), (dict(samples_per_epoch=0), "samples_per_epoch"),
                      (dict(seed=-1), "seed"), (dict(prune_threshold=-0.1), "prune_threshold")):
        with pytest.raises(ValueError, match=f"^{name} must be"):
            _config(**bad).validate()
    train, val = _data()
    with pytest.raises(ValueError, match="l2"):
        Trainer(build_model("ordinal", train), train, val, _config(l2=[0.1, 0.2]))


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    train, val = _data()
    model = build_model("copula", train, seed=0)
    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch \d+ .*lower the learning "
                                               r"rate or clip the gradients; the last checkpoint is kept"):
        fit(model, train, val, _config(lr=1e6, grad_clip=None, epochs=3), tmp_path)


def test_bad_labels_are_an_input_error_not_divergence():
    train, val = _data()
    train[0].labels[0, 0] = 7
    with pytest.raises(ValueError, match="labels must lie in -1"):
        Trainer(build_model("copula", train, seed=0), train, val, _config())


def test_the_default_schedule_keeps_the_copula_edges(tmp_path):
    """With TrainConfig's defaults (only fewer epochs, on small synthetic DISFA faces) the thetas move
    well past the pruning threshold: the model stays a CCNN (at pairwise_lr_scale 1 every edge was
    pruned here)."""
    import warnings
    from ccnn.data import generate_synthetic
    from ccnn.experiment import prepare_data
    folder = generate_synthetic(tmp_path / "synth", context="disfa", subjects=27, frames=120, image_size=32)
    data = prepare_data(str(folder), image_size=16, cache_dir=tmp_path / "cache", progress=False)
    model = build_model("copula", data.train, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AllEdgesPruned)
        result = fit(model, data.train, data.val, TrainConfig(epochs=5, progress=False))
    kept, before = result.edges[data.target]
    assert before == 66 and kept >= 0.8 * before, result.edges
    thetas = np.abs(list(result.model.association()[data.target].values()))
    assert np.median(thetas) > 5 * TrainConfig().prune_threshold
