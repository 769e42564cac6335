"""A CCNN for given data: `build_model` sizes and initialises one from training faces,
`dataset_remap` maps the datasets of a FaceDataset to the model's (whose pairwise terms each uses),
`resolve_device` picks the device ("auto": CUDA when present)."""
from __future__ import annotations

import torch

from .data.torch_data import FaceDataset
from .model import CCNN


def resolve_device(name="auto") -> torch.device:
    """`name` ('auto', 'cpu', 'cuda', 'cuda:N' or a torch.device) as a torch.device that this machine
    has; a ValueError naming it otherwise."""
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # (an unknown name)
        device = None
    if device is None or device.type not in ("cpu", "cuda"):  # (the ops have CPU and CUDA kernels)
        raise ValueError(f"device {name!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def build_model(head: str, train_faces, image_size: int | None = None, seed: int = 0,
                padding: str = "same") -> CCNN:
    """A CCNN over the union of AUs of `train_faces` (one FaceArrays or a list), one dataset per
    FaceArrays, with unary outputs started at the training label frequencies."""
    faces = train_faces if isinstance(train_faces, (list, tuple)) else [train_faces]
    torch.manual_seed(seed)
    union = FaceDataset(faces, aus=None, train=False, crop=1.0, seed=seed)
    dataset_aus = {}
    for f in faces:
        dataset_aus.setdefault(f.dataset, [])
        dataset_aus[f.dataset] = sorted(set(dataset_aus[f.dataset]) | {int(a) for a in f.aus})
    size = image_size or int(faces[0].images.shape[-1])
    model = CCNN(union.aus, head=head, dataset_aus=dataset_aus, image_size=size, padding=padding)
    model.init_from_labels(union.labels)
    return model


def dataset_remap(dataset_names, model: CCNN, context: str | None = None) -> torch.Tensor:
    """Model dataset index of each dataset of a FaceDataset (by name). Unknown names use `context`
    (a model dataset name) or, for a single-dataset model, its only dataset."""
    if context is not None and context not in model.dataset_names:  # (checked even where unused)
        raise ValueError(f"context {context!r} is not one of the model's datasets {model.dataset_names}")
    out = []
    for name in dataset_names:
        if name in model.dataset_names:
            out.append(model.dataset_names.index(name))
        elif context is not None:
            out.append(model.dataset_names.index(context))
        elif len(model.dataset_names) == 1:
            out.append(0)
        else:
            raise ValueError(f"dataset {name!r} is not one of the model's datasets {model.dataset_names}; "
                             f"choose the pairwise parameters to use with context=...")
    return torch.tensor(out, dtype=torch.int64)
