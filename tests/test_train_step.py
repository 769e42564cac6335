"""Training with each batch pipeline, mixed precision and torch.compile, against the plain float32
run with the per-sample loader as reference."""
import json

import pytest
import torch

from ccnn.model_setup import build_model
from ccnn.run_folder import RunFolderError
from ccnn.train_step import NetworkStep
from ccnn.trainer import TrainConfig, Trainer
from train_toy_data import toy_faces


def _config(**kw):
    base = dict(epochs=1, batch_size=16, samples_per_epoch=48, ibb_unary_batches=1, ibb_pairwise_batches=1,
                progress=False, train_eval_samples=16, eval_batch_size=32, lr=0.01, seed=3, device="cpu",
                prune_threshold=0.0)
    base.update(kw)
    return TrainConfig(**base)


def _train(config, size=16):
    data = [toy_faces("a", (1, 2, 4), size=size, seed=1), toy_faces("b", (2, 4, 6), subjects=3, size=size, seed=2)]
    model = build_model("copula", data, seed=0)
    trainer = Trainer(model, data, None, config)
    trainer.fit()
    return trainer


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _largest_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max() / (1 + b[k].float().abs().max())) for k in b)


@pytest.mark.parametrize("mode", ["joint", "ibb"])
def test_device_and_loader_pipelines_train_alike(mode):
    loader = _train(_config(mode=mode, pipeline="loader"))
    device = _train(_config(mode=mode, pipeline="device"))
    assert loader.batches.name == "loader" and device.batches.name == "device"
    before = build_model("copula", [toy_faces("a", (1, 2, 4), seed=1),
                                    toy_faces("b", (2, 4, 6), subjects=3, seed=2)], seed=0).state_dict()
    moved = _largest_difference(_params(loader), before)
    # the images differ by float32 rounding only (test_device_pipeline), so the runs agree far more
    # closely than training moved the parameters
    assert moved > 1e-2 and _largest_difference(_params(device), _params(loader)) < 1e-4


def test_bf16_training_stays_close_to_float32_and_keeps_float32_parameters():
    reference = _train(_config())
    bf16 = _train(_config(amp="bf16"))
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    difference = _largest_difference(_params(bf16), _params(reference))
    assert 0 < difference < 5e-2, difference  # bf16 keeps 8 bits of mantissa in the CNN


def test_fp16_scales_the_loss_and_saves_the_scaler(tmp_path):
    trainer = _train(_config(amp="fp16", mode="joint"))
    assert trainer.network.scaler is not None and trainer.network.scaler.get_scale() > 0
    reference = _train(_config(mode="joint"))
    assert _largest_difference(_params(trainer), _params(reference)) < 5e-2
    state = trainer._state()["grad_scaler"]
    assert state["scale"] == trainer.network.scaler.get_scale()
    fresh = NetworkStep(trainer.model, "fp16", device="cpu")
    fresh.load_state_dict(state)
    assert fresh.scaler.get_scale() == state["scale"]


def test_amp_features_are_float32_and_bad_modes_are_refused():
    model = build_model("copula", [toy_faces("a", (1, 2, 4), seed=1)], seed=0)
    images = torch.randn(4, 1, 16, 16)
    for amp in ("off", "bf16", "fp16"):
        features = NetworkStep(model, amp).features(images)
        assert features.dtype == torch.float32
        torch.testing.assert_close(features, model.features(images), atol=0.05 * features.abs().max().item(),
                                   rtol=0)
    with pytest.raises(ValueError, match="amp must be one of"):
        NetworkStep(model, "fp8")
    with pytest.raises(ValueError, match="amp must be one of"):
        _config(amp="half").validate()
    with pytest.raises(ValueError, match="pipeline must be one of"):
        _config(pipeline="gpu").validate()


def test_compiled_training_matches_eager():
    """torch.compile on CPU takes tens of seconds: one tiny joint epoch."""
    eager = _train(_config(mode="joint", samples_per_epoch=32))
    compiled = _train(_config(mode="joint", samples_per_epoch=32, compile=True))
    assert _largest_difference(_params(compiled), _params(eager)) < 1e-4


def test_a_run_from_before_the_amp_setting_resumes_and_amp_is_run_defining(tmp_path):
    data = [toy_faces("a", (1, 2, 4), seed=1)]
    Trainer(build_model("copula", data, seed=0), data, None, _config(mode="joint"), out_dir=tmp_path).fit()
    manifest = json.loads((tmp_path / "run.json").read_text())
    del manifest["settings"]["amp"]  # as written before --amp existed
    (tmp_path / "run.json").write_text(json.dumps(manifest))
    Trainer(build_model("copula", data, seed=0), data, None, _config(mode="joint", pipeline="loader"),
            out_dir=tmp_path).fit()  # the default amp ("off") and another pipeline: no change
    with pytest.raises(RunFolderError, match="--amp 'off' -> 'bf16'"):
        Trainer(build_model("copula", data, seed=0), data, None, _config(mode="joint", amp="bf16"),
                out_dir=tmp_path).fit()
