"""The device-resident batch source against the per-sample FaceDataset (OpenCV crops) as reference:
the same indices and crop corners give the same images (to float32 rounding: the two compute the
bilinear weights in different precision), labels and dataset indices."""
import numpy as np
import pytest
import torch

from ccnn.data import FaceDataset
from ccnn.data.samplers import EpochShuffleSampler, SubjectBalancedSampler
from ccnn.device_pipeline import (DeviceBatches, LoaderBatches, batch_source, choose_pipeline,
                                  faces_bytes)
from ccnn.preprocess import FaceArrays


def faces(name, aus, n, size=40, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    images = (rng.standard_normal((n, size, size)) * 2).astype(dtype)
    labels = rng.integers(-1, 6, size=(n, len(aus)))
    return FaceArrays(images, labels, np.array([f"{name}{i % 4}" for i in range(n)]), aus, name, 0)


def _reference(ds, indices):
    images, labels, d = ds.get_batch(indices)
    return images.numpy(), labels.numpy(), d.numpy()


@pytest.mark.parametrize("crop, out_size, dtype", [(0.85, None, np.float32), (0.85, 24, np.float32),
                                                   (1.0, None, np.float32), (0.7, 53, np.float16)])
def test_device_batches_match_the_per_sample_crops(crop, out_size, dtype):
    parts = [faces("a", [1, 2, 4], 23, dtype=dtype), faces("b", [2, 6], 17, seed=1, dtype=dtype)]
    ds = FaceDataset(parts, train=True, crop=crop, seed=3, out_size=out_size)
    remap = torch.tensor([1, 0])
    source = DeviceBatches(ds, remap, batch_size=8, device="cpu")
    assert source.faces.dtype == torch.from_numpy(np.empty(0, dtype)).dtype  # the cache's dtype, no copy to float
    for epoch in (0, 5):
        ds.set_epoch(epoch)
        sampler = EpochShuffleSampler(len(ds), 30, seed=epoch)
        order = list(sampler)
        got = list(source(sampler))
        assert [len(b[0]) for b in got] == [8, 8, 8, 6]
        images = torch.cat([b[0] for b in got]).numpy()
        ref_images, ref_labels, ref_d = _reference(ds, order)
        assert images.shape == ref_images.shape and images.dtype == np.float32
        np.testing.assert_allclose(images, ref_images, atol=1e-5 * np.abs(ref_images).max())
        np.testing.assert_array_equal(torch.cat([b[1] for b in got]).numpy(), ref_labels)
        np.testing.assert_array_equal(torch.cat([b[2] for b in got]).numpy(), remap[ref_d].numpy())


def test_both_sources_yield_the_same_batches_for_a_balanced_sampler():
    ds = FaceDataset(faces("a", [1, 2], 31), train=True, seed=0)
    ds.set_epoch(2)
    sampler = SubjectBalancedSampler(ds.subjects, 20, seed=4)
    remap = torch.tensor([0])
    loader, device = LoaderBatches(ds, remap, 6, "cpu"), DeviceBatches(ds, remap, 6, "cpu")
    for (a, la, da), (b, lb, db) in zip(loader(sampler), device(sampler), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5 * a.abs().max().item(), rtol=0)  # ~ float32 rounding
        assert torch.equal(la, lb) and torch.equal(da, db)


def test_eval_centre_crops_and_plain_index_lists():
    ds = FaceDataset(faces("a", [1], 9), train=False)
    source = DeviceBatches(ds, torch.tensor([0]), 4, "cpu")
    (images, _, _), = source(range(9), batch_size=9)
    reference = ds.get_batch(list(range(9)))[0]
    torch.testing.assert_close(images, reference, atol=1e-5 * reference.abs().max().item(), rtol=0)


def test_choice_by_size_and_forced_choices(monkeypatch):
    ds = FaceDataset(faces("a", [1], 10, size=16))
    assert faces_bytes(ds) == 10 * 16 * 16 * 4
    assert choose_pipeline("device", ds, "cpu") == "device"
    assert choose_pipeline("loader", ds, "cpu") == "loader"
    monkeypatch.setattr("ccnn.device_pipeline.free_memory", lambda device: 10 ** 9)
    assert choose_pipeline("auto", ds, "cpu") == "device"
    monkeypatch.setattr("ccnn.device_pipeline.free_memory", lambda device: 1000)
    assert choose_pipeline("auto", ds, "cpu") == "loader"
    assert isinstance(batch_source(ds, torch.tensor([0]), 4, "cpu", "auto"), LoaderBatches)
    with pytest.raises(ValueError, match="pipeline 'device'.*--pipeline loader"):
        batch_source(ds, torch.tensor([0]), 4, "cpu", "device")
    monkeypatch.setattr("ccnn.device_pipeline.free_memory", lambda device: None)
    assert choose_pipeline("auto", ds, "cpu") == "loader"  # unknown free memory: the safe choice
    with pytest.raises(ValueError, match="pipeline must be one of"):
        choose_pipeline("gpu", ds, "cpu")
