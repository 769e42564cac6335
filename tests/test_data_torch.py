"""FaceDataset: union of AUs over data sets, crops (random per epoch / centre), batches."""
import cv2
import numpy as np
import pytest
import torch

from ccnn.data import FaceDataset
from ccnn.preprocess import FaceArrays


def faces(name, aus, n, size=20, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, size, size)).astype(np.float32)
    labels = rng.integers(-1, 6, size=(n, len(aus)))
    return FaceArrays(images, labels, np.array([f"{name}{i % 3}" for i in range(n)]), aus, name, 0)


def test_union_of_aus_with_missing_filled():
    a, b = faces("a", [12, 1, 6], 5), faces("b", [6, 26], 4, seed=1)
    ds = FaceDataset([a, b])
    assert ds.aus == [1, 6, 12, 26] and len(ds) == 9 and ds.dataset_names == ["a", "b"]
    np.testing.assert_array_equal(ds.labels[:5, [2, 0, 1]], a.labels)  # a: AU12, AU1, AU6
    assert (ds.labels[:5, 3] == -1).all() and (ds.labels[5:, [0, 2]] == -1).all()
    np.testing.assert_array_equal(ds.labels[5:, [1, 3]], b.labels)
    assert ds.dataset_index.tolist() == [0] * 5 + [1] * 4 and ds.offsets == [0, 5]
    image, labels, d = ds[6]
    assert image.shape == (1, 20, 20) and image.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == ds.labels[6].tolist() and d == 1
    only = FaceDataset([a, b], aus=[26, 12])
    assert only.labels.shape == (9, 2) and (only.labels[:5, 0] == -1).all()


def test_eval_uses_the_centre_crop_resized_back():
    a = faces("a", [1], 3, size=40)
    ds = FaceDataset(a, train=False, crop=0.85)
    c = round(0.85 * 40)
    start = (40 - c) // 2
    expected = cv2.resize(a.images[1, start:start + c, start:start + c], (40, 40), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ds[1][0][0].numpy(), expected, atol=1e-6)
    small = FaceDataset(a, crop=0.85, out_size=24)
    assert small[0][0].shape == (1, 24, 24)


def test_train_crops_are_random_reproducible_and_change_with_epoch():
    a = faces("a", [1], 50, size=32)
    one, two = FaceDataset(a, train=True, seed=4), FaceDataset(a, train=True, seed=4)
    corners = one._corners.copy()
    np.testing.assert_array_equal(corners, two._corners)
    assert corners.min() >= 0 and corners.max() <= 32 - round(0.85 * 32)
    assert len({tuple(c) for c in corners}) > 10
    one.set_epoch(1)
    assert not np.array_equal(one._corners, corners)
    one.set_epoch(0)
    np.testing.assert_array_equal(one._corners, corners)
    y, x = corners[7]
    c = round(0.85 * 32)
    expected = cv2.resize(a.images[7, y:y + c, x:x + c], (32, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(one[7][0][0].numpy(), expected, atol=1e-6)


def test_batches_and_dataloader_agree():
    ds = FaceDataset([faces("a", [1, 2], 6), faces("b", [2], 5, seed=2)], train=True, seed=1)
    images, labels, index = ds.get_batch([0, 7, 3])
    assert images.shape == (3, 1, 20, 20) and labels.shape == (3, 2) and index.tolist() == [0, 1, 0]
    loader = torch.utils.data.DataLoader(ds, batch_size=11, shuffle=False)
    batch = next(iter(loader))
    torch.testing.assert_close(batch[0][[0, 7, 3]], images)
    torch.testing.assert_close(batch[1][[0, 7, 3]], labels)


def test_float16_images_come_out_as_float32():
    a = faces("a", [1], 2)
    a.images = a.images.astype(np.float16)
    assert FaceDataset(a)[0][0].dtype == torch.float32


@pytest.mark.parametrize("kwargs, error", [({"crop": 0}, ValueError), ({"crop": 1.2}, ValueError),
                                           ({"aus": [1, 1]}, ValueError), ({"out_size": 0}, ValueError)])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        FaceDataset(faces("a", [1], 2), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError):
        FaceDataset([])
    with pytest.raises(ValueError, match="same image size"):
        FaceDataset([faces("a", [1], 2, size=20), faces("b", [1], 2, size=24)])
    with pytest.raises(IndexError):
        FaceDataset(faces("a", [1], 2))[5]
