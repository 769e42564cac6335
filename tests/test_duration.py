"""The duration estimate before training (ccnn.duration): the schedule it prices is the work a run
does, counted by watching a real run (its optimiser steps by parameter group, and the images through
the network without a gradient), and timing IBB's head steps leaves the run unchanged."""
import pytest
import torch

from ccnn.data import generate_synthetic, load_dataset
from ccnn.data.dataset import split_subjects
from ccnn.duration import Schedule, estimate_duration, training_schedule
from ccnn.model_setup import build_model
from ccnn.preprocess import preprocess
from ccnn.train_config import TrainConfig
from ccnn.trainer import Trainer


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("duration")
    ds = load_dataset(generate_synthetic(root / "disfa", context="disfa", subjects=5, frames=6, seed=0,
                                         image_size=32))
    train, val = split_subjects(ds, ("fraction", 0.6, 0))
    return [preprocess(part, size=16, cache_dir=root / "cache", workers=1, progress=False) for part in (train, val)]


def _trainer(faces, **settings):
    torch.manual_seed(0)
    config = TrainConfig(epochs=2, batch_size=8, samples_per_epoch=20, ibb_unary_batches=2,
                         ibb_pairwise_batches=1, patience=10, train_eval_samples=7, progress=False,
                         **settings)
    return Trainer(build_model("copula", faces[0], seed=0), faces[0], faces[1], config=config)


def _counted_run(trainer) -> Schedule:
    """fit() with every optimiser step sorted by the parameters it updates, and the images that go
    through the network without a gradient counted."""
    model, counts = trainer.model, Schedule(0, 0, 0, 0)
    pairwise, unary = model.pairwise_parameters(), model.unary_parameters()
    step = trainer._step

    def counting_step(loss, params, *share):
        if len(params) == 1 and any(params[0] is p for p in pairwise):
            counts.pairwise_steps += 1
        elif all(any(p is u for u in unary) for p in params):
            counts.unary_steps += 1
        else:
            counts.cnn_steps += 1
        return step(loss, params, *share)

    def count_forward(module, inputs, output):
        if not torch.is_grad_enabled():
            counts.forward_images += inputs[0].shape[0]

    trainer._step = counting_step
    hook = model.features.register_forward_hook(count_forward)
    try:
        trainer.fit()
    finally:
        hook.remove()
    return counts


@pytest.mark.parametrize("settings", [{"mode": "joint"}, {"mode": "ibb"},
                                      {"mode": "ibb", "ibb_heads_first": False}])
def test_the_schedule_is_the_work_of_a_run(faces, settings):
    trainer = _trainer(faces, **settings)
    expected = training_schedule(trainer)
    assert _counted_run(trainer) == expected
    if settings["mode"] == "ibb":
        assert expected.unary_steps > 0 and expected.pairwise_steps > 0  # the head steps are counted


def test_ibb_head_steps_add_to_the_estimate_and_leave_the_run_unchanged(faces):
    weights = []
    for estimate in (False, True):
        trainer = _trainer(faces, mode="ibb")
        if estimate:
            step, total = estimate_duration(trainer)
            schedule = training_schedule(trainer)
            without_heads = schedule.cnn_steps * step + schedule.forward_images / 8 * step / 3
            assert 0 < step and without_heads < total
        weights.append(torch.cat([p.detach().flatten() for p in trainer.fit().model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_the_timed_steps_cannot_break_the_model_copy(faces):
    """At a learning rate that would throw the thresholds out of order within a step, the timed
    steps still run: they do the update's work at learning rate 0 (the demo's quick run once failed
    here)."""
    step, total = estimate_duration(_trainer(faces, mode="ibb", lr=1e4))
    assert 0 < step < total < float("inf")


@pytest.mark.parametrize("mode", ["joint", "ibb"])
def test_an_infinite_loss_leaves_the_estimate_and_the_error_to_the_run(faces, mode):
    """With an L2 weight whose term overflows, every gradient is infinite and 0 x inf = NaN: the timed
    steps put the weights back after each step, so the estimate is made, and the run itself stops
    with the divergence named (it once failed inside the estimate, 'z must be finite')."""
    from ccnn.trainer import TrainingDiverged
    trainer = _trainer(faces, mode=mode, l2=1e300)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    step, total = estimate_duration(trainer)
    assert 0 < step < total < float("inf")
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    where = "an IBB step of AU \\d+'s unary parameters" if mode == "ibb" else ""
    with pytest.raises(TrainingDiverged, match=f"the loss{' of ' if where else ''}{where} is inf \\(its "
                                               f"regularisation term is inf\\); lower the L2 weight"):
        trainer.fit()
