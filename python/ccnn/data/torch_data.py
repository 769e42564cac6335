"""torch Dataset over pre-processed faces (one or several data sets), with the 85% crop."""
from __future__ import annotations

import numbers

import cv2
import numpy as np
import torch

from ..preprocess import FaceArrays

MISSING = -1


class FaceDataset(torch.utils.data.Dataset):
    """Faces of one or several `FaceArrays` with labels over a common AU list.

    Several FaceArrays: their AUs are united (order: `aus` if given, else sorted); an AU a data set
    does not annotate reads -1. Item i -> (image FloatTensor (1, S', S'), labels LongTensor (Q,),
    dataset index int), with S' = out_size (default: the stored size S).
    train=True: a random square crop of side round(crop * S), resized to S'; the crops are drawn
    for all items at once from (seed, epoch), so `set_epoch(e)` gives a new, reproducible draw.
    train=False: the centre crop of the same side, so train and test images match in scale.
    """

    def __init__(self, faces: FaceArrays | list[FaceArrays], aus: list[int] | None = None,
                 train: bool = False, crop: float = 0.85, seed: int = 0, out_size: int | None = None):
        parts = [faces] if isinstance(faces, FaceArrays) else list(faces)
        if not parts or not all(isinstance(p, FaceArrays) for p in parts):
            raise TypeError("faces must be a FaceArrays or a non-empty list of FaceArrays")
        sizes = {p.size for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"all FaceArrays must have the same image size, got {sorted(sizes)}")
        if isinstance(crop, bool) or not isinstance(crop, numbers.Real) or not 0.0 < float(crop) <= 1.0:
            raise ValueError(f"crop must be a number in (0, 1], got {crop!r}")
        self.aus = sorted({au for p in parts for au in p.aus}) if aus is None else [int(a) for a in aus]
        if len(set(self.aus)) != len(self.aus) or not self.aus:
            raise ValueError(f"aus must be a non-empty list of distinct AU numbers, got {aus}")
        self.size = sizes.pop()
        self.crop_size = max(1, int(round(float(crop) * self.size)))
        self.out_size = self.size if out_size is None else int(out_size)
        if self.out_size < 1:
            raise ValueError(f"out_size must be positive, got {out_size}")
        self.train, self.seed = bool(train), int(seed)
        self.dataset_names = [p.dataset for p in parts]
        self._images = [p.images for p in parts]
        self._starts = np.cumsum([0] + [len(p) for p in parts])
        self.offsets = self._starts[:-1].tolist()  # first index of each data set (MultiDatasetSampler)
        labels = []
        for p in parts:
            part = np.full((len(p), len(self.aus)), MISSING, np.int64)
            for q, au in enumerate(self.aus):
                if au in p.aus:
                    part[:, q] = p.labels[:, p.aus.index(au)]
            labels.append(part)
        self.labels = np.concatenate(labels)
        self.subjects = np.concatenate([np.asarray(p.subjects).astype(str) for p in parts])
        self.dataset_index = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Draw the random crops of epoch `epoch` (train=True); the centre crop otherwise."""
        self.epoch = int(epoch)
        room = self.size - self.crop_size
        if self.train and room > 0:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._corners = rng.integers(0, room + 1, size=(len(self), 2))
        else:
            self._corners = np.full((len(self), 2), room // 2)

    @property
    def corners(self) -> np.ndarray:
        """(N, 2) corner (row, column) of each item's crop in the current epoch."""
        return self._corners

    @property
    def image_parts(self) -> list:
        """The face arrays (N_d, S, S) of the data sets, in order (memory-mapped where cached)."""
        return list(self._images)

    def image(self, i: int) -> np.ndarray:
        """(out_size, out_size) float32 cropped face of item i."""
        d = int(np.searchsorted(self._starts, i, side="right") - 1)
        y, x = self._corners[i]
        c = self.crop_size
        face = np.asarray(self._images[d][i - self._starts[d], y:y + c, x:x + c], dtype=np.float32)
        if c != self.out_size:
            face = cv2.resize(face, (self.out_size, self.out_size), interpolation=cv2.INTER_LINEAR)
        return face

    def __getitem__(self, i):
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} faces")
        i %= len(self)
        return (torch.from_numpy(self.image(i))[None], torch.from_numpy(self.labels[i]),
                int(self.dataset_index[i]))

    def get_batch(self, indices):
        """(images (B, 1, S', S'), labels (B, Q), dataset index (B,)) for a list of indices."""
        indices = np.asarray(indices, dtype=np.int64)
        images = np.stack([self.image(int(i)) for i in indices])[:, None]
        return (torch.from_numpy(images), torch.from_numpy(self.labels[indices]),
                torch.from_numpy(self.dataset_index[indices]))
