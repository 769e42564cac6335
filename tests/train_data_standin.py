"""Tiny stand-ins for the data layer's contract (FaceArrays, FaceDataset, the balanced samplers), used
by the trainer's tests only while `ccnn.data` is not in this build, plus a small synthetic face
generator for the tests. Nothing here ships in ccnn."""
import sys
import types
from dataclasses import dataclass

import numpy as np
import torch


def _have_data_layer():
    try:
        import ccnn.data.samplers  # noqa: F401
        import ccnn.data.torch_data  # noqa: F401
        import ccnn.preprocess  # noqa: F401
        return True
    except ImportError:
        return False


@dataclass
class FaceArrays:
    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    aus: list
    dataset: str
    skipped: int = 0


class FaceDataset(torch.utils.data.Dataset):
    def __init__(self, faces, aus=None, train=False, crop=0.85, seed=0):
        faces = faces if isinstance(faces, (list, tuple)) else [faces]
        self.aus = list(aus) if aus is not None else sorted({a for f in faces for a in f.aus})
        blocks = []
        for f in faces:
            lab = np.full((len(f.labels), len(self.aus)), -1, dtype=np.int64)
            for j, a in enumerate(f.aus):
                if a in self.aus:
                    lab[:, self.aus.index(a)] = f.labels[:, j]
            blocks.append(lab)
        self.images = np.concatenate([f.images for f in faces])
        self.labels = np.concatenate(blocks)
        self.subjects = np.concatenate([f.subjects for f in faces])
        self.dataset_index = np.concatenate([np.full(len(f.labels), i) for i, f in enumerate(faces)])
        self.dataset_names = [f.dataset for f in faces]
        self.train, self.crop, self.seed, self.epoch = train, crop, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = torch.from_numpy(np.asarray(self.images[i], dtype=np.float32))[None]
        S = img.shape[-1]
        c = max(1, int(round(self.crop * S)))
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            y0, x0 = rng.integers(0, S - c + 1, size=2)
        else:
            y0 = x0 = (S - c) // 2
        img = img[:, y0:y0 + c, x0:x0 + c]
        img = torch.nn.functional.interpolate(img[None], size=(S, S), mode="bilinear",
                                              align_corners=False)[0]
        return img, torch.from_numpy(self.labels[i]), int(self.dataset_index[i])


class _Balanced(torch.utils.data.Sampler):
    """Draw a group uniformly among the observed groups, then a member uniformly."""

    def __init__(self, keys, num_samples, seed=0):
        keys = [k for k in keys]
        self.groups = {}
        for i, k in enumerate(keys):
            if k is not None:
                self.groups.setdefault(k, []).append(i)
        self.keys = sorted(self.groups)
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.num_samples):
            members = self.groups[self.keys[rng.integers(len(self.keys))]]
            yield int(members[rng.integers(len(members))])


def SubjectBalancedSampler(subjects, num_samples, seed=0):
    return _Balanced(list(subjects), num_samples, seed)


def LevelBalancedSampler(labels_q, num_samples, seed=0):
    return _Balanced([int(y) if y >= 0 else None for y in labels_q], num_samples, seed)


def PairBalancedSampler(labels_r, labels_s, num_samples, seed=0):
    keys = [(int(a), int(b)) if a >= 0 and b >= 0 else None for a, b in zip(labels_r, labels_s)]
    return _Balanced(keys, num_samples, seed)


class MultiDatasetSampler(torch.utils.data.Sampler):
    def __init__(self, samplers, offsets, num_samples, seed=0):
        self.samplers, self.offsets, self.num_samples, self.seed = samplers, offsets, num_samples, seed

    def set_epoch(self, epoch):
        for s in self.samplers:
            s.set_epoch(epoch)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        its = [iter(s) for s in self.samplers]
        for k in range(self.num_samples):
            j = k % len(its)
            yield next(its[j]) + self.offsets[j]


def install_data_standin(monkeypatch):
    """Register the stand-ins as ccnn.data.torch_data / ccnn.data.samplers when those are missing."""
    if _have_data_layer():
        return
    torch_data = types.ModuleType("ccnn.data.torch_data")
    torch_data.FaceDataset = FaceDataset
    samplers = types.ModuleType("ccnn.data.samplers")
    for name in ("SubjectBalancedSampler", "LevelBalancedSampler", "PairBalancedSampler",
                 "MultiDatasetSampler"):
        setattr(samplers, name, globals()[name])
    data = sys.modules.get("ccnn.data") or types.ModuleType("ccnn.data")
    monkeypatch.setitem(sys.modules, "ccnn.data", data)
    monkeypatch.setitem(sys.modules, "ccnn.data.torch_data", torch_data)
    monkeypatch.setitem(sys.modules, "ccnn.data.samplers", samplers)
    monkeypatch.setattr(data, "torch_data", torch_data, raising=False)
    monkeypatch.setattr(data, "samplers", samplers, raising=False)


def toy_faces(dataset="toy", aus=(1, 2, 4), subjects=4, frames=12, size=16, seed=0, coupled=True):
    """FaceArrays whose images encode the labels: AU q brightens its own horizontal band in
    proportion to its intensity; with `coupled`, AU 2 mostly follows AU 1 (a dependency to learn)."""
    rng = np.random.default_rng(seed)
    n, Q = subjects * frames, len(aus)
    labels = rng.choice(6, p=[0.45, 0.2, 0.15, 0.1, 0.06, 0.04], size=(n, Q))
    if coupled and Q > 1:
        follow = rng.random(n) < 0.8
        labels[follow, 1] = labels[follow, 0]
    images = rng.normal(0, 0.3, size=(n, size, size)).astype(np.float32)
    band = max(1, size // Q)
    for q in range(Q):
        images[:, q * band:(q + 1) * band, :] += labels[:, q, None, None] * 0.5
    subj = np.repeat([f"{dataset}-S{k:02d}" for k in range(subjects)], frames)
    return FaceArrays(images=images, labels=labels.astype(np.int64), subjects=subj, aus=list(aus),
                      dataset=dataset)
