"""Tiny pre-processed face sets for the trainer's tests (seconds to train on)."""
import numpy as np

from ccnn.preprocess import FaceArrays


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
    subjects_ = np.repeat([f"{dataset}-S{k:02d}" for k in range(subjects)], frames)
    return FaceArrays(images=images, labels=labels.astype(np.int64), subjects=subjects_, aus=list(aus),
                      dataset=dataset, skipped=0)
