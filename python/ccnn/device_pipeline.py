"""Where training batches come from: the per-sample loader, or every face resident on the training device.

    loader  FaceDataset through a DataLoader: one Python call and one OpenCV resize per face; works
            for any data size (the faces stay memory-mapped on disk).
    device  all training faces copied once onto the training device (GPU memory, or RAM on a CPU),
            in the cache's dtype; each batch is one gather of its faces and one separable bilinear
            resize of its crops, batch-wise on the device, with no per-sample Python.
    auto    device when the faces take at most DEVICE_SHARE of the device's free memory, else loader.

Both give the same batches for the same indices: the device pipeline takes the crop corners that
FaceDataset drew for the epoch and reproduces its resize (OpenCV's INTER_LINEAR: half-pixel centres,
edge samples repeated), so the images agree to float32 rounding. The faces are kept in the dtype of
the cache (float32, or float16 with `ccnn preprocess --dtype float16`): the cache holds faces that
are already contrast-normalised, so quantising them to uint8 would change the training data.

A batch source is called with a sampler, or any iterable of dataset indices, and yields (images
(B, 1, S', S') float32, labels (B, Q) int64, model dataset index (B,)) on the device; the indices of
one call are drawn once, so a distributed sampler can hand each process its own share.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data.torch_data import FaceDataset

PIPELINES = ("auto", "device", "loader")
DEVICE_SHARE = 0.5      # auto: the faces may take this share of the device's free memory


def linear_taps(crop: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first tap, second tap, weight of the second) of each of `out` output pixels resampled
    bilinearly from `crop` input pixels as OpenCV's INTER_LINEAR does: source position
    (i + 0.5) * crop / out - 0.5, taps outside the crop replaced by its edge pixel."""
    pos = (np.arange(out) + 0.5) * (crop / out) - 0.5
    first = np.floor(pos).astype(np.int64)
    weight = (pos - first).astype(np.float32)
    weight[first < 0] = 0.0
    first = np.clip(first, 0, crop - 1)
    weight[first >= crop - 1] = 0.0
    return first, np.minimum(first + 1, crop - 1), weight


class LoaderBatches:
    """Batches of the per-sample FaceDataset through a DataLoader, moved to `device` (pinned memory
    and non-blocking copies on CUDA)."""

    name = "loader"

    def __init__(self, dataset: FaceDataset, remap: torch.Tensor, batch_size: int, device,
                 num_workers: int = 0):
        self.dataset, self.batch_size, self.num_workers = dataset, int(batch_size), int(num_workers)
        self.device = torch.device(device)
        self.remap = torch.as_tensor(remap, dtype=torch.int64)

    def __call__(self, sampler, batch_size: int | None = None):
        pin = self.device.type == "cuda"
        loader = DataLoader(self.dataset, batch_size=batch_size or self.batch_size, sampler=sampler,
                            num_workers=self.num_workers, pin_memory=pin)
        for images, labels, d in loader:
            yield (images.to(self.device, non_blocking=pin), labels.to(self.device, non_blocking=pin),
                   self.remap[d].to(self.device, non_blocking=pin))


class DeviceBatches:
    """All faces of `dataset` as one tensor on `device`; each batch gathers its faces and resizes
    the crops of the dataset's current epoch (`dataset.set_epoch`) there."""

    name = "device"

    def __init__(self, dataset: FaceDataset, remap: torch.Tensor, batch_size: int, device):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.device = torch.device(device)
        self.faces = _faces_on_device(dataset, self.device)
        self.labels = torch.as_tensor(dataset.labels, dtype=torch.int64).to(self.device)
        remap = torch.as_tensor(remap, dtype=torch.int64)
        self.model_index = remap[torch.as_tensor(dataset.dataset_index, dtype=torch.int64)].to(self.device)
        first, second, weight = linear_taps(dataset.crop_size, dataset.out_size)
        self._taps = [torch.as_tensor(a).to(self.device) for a in (first, second, weight)]
        self._epoch = None

    def _corners(self) -> torch.Tensor:
        """(N, 2) crop corners (row, column) of the dataset's current epoch, uploaded once per epoch."""
        if self._epoch != self.dataset.epoch:
            self._corner_table = torch.as_tensor(self.dataset.corners, dtype=torch.int64).to(self.device)
            self._epoch = self.dataset.epoch
        return self._corner_table

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, 1, S', S') float32 crops of the faces at `indices` (an int64 tensor on the device)."""
        first, second, weight = self._taps
        corner = self._corners()[indices]
        faces = self.faces[indices].float()                              # (B, S, S)
        cols = corner[:, 1:2] + first, corner[:, 1:2] + second           # (B, S')
        expand = (-1, faces.shape[1], -1)
        left = faces.gather(2, cols[0][:, None, :].expand(*expand))
        right = faces.gather(2, cols[1][:, None, :].expand(*expand))
        across = left * (1 - weight) + right * weight                    # (B, S, S'): rows first
        rows = corner[:, :1] + first, corner[:, :1] + second
        expand = (-1, -1, across.shape[2])
        top = across.gather(1, rows[0][:, :, None].expand(*expand))
        bottom = across.gather(1, rows[1][:, :, None].expand(*expand))
        return (top * (1 - weight[:, None]) + bottom * weight[:, None]).unsqueeze(1)

    def __call__(self, sampler, batch_size: int | None = None):
        order = _indices(sampler).to(self.device)
        for idx in order.split(batch_size or self.batch_size):
            yield self.images(idx), self.labels[idx], self.model_index[idx]


def _indices(sampler) -> torch.Tensor:
    """A sampler's draw (or any iterable of indices) as one int64 tensor, drawn once per call."""
    if hasattr(sampler, "indices"):
        return torch.as_tensor(sampler.indices(), dtype=torch.int64)
    return torch.as_tensor(np.fromiter(sampler, dtype=np.int64))


def _faces_on_device(dataset: FaceDataset, device: torch.device) -> torch.Tensor:
    """One (N, S, S) tensor of every face, filled part by part (a memory-mapped cache is read once)."""
    parts = dataset.image_parts
    dtype = torch.from_numpy(np.empty(0, dtype=parts[0].dtype)).dtype
    faces = torch.empty((len(dataset), dataset.size, dataset.size), dtype=dtype, device=device)
    start = 0
    for part in parts:
        for a in range(0, len(part), 4096):
            rows = np.ascontiguousarray(part[a:a + 4096])
            faces[start + a:start + a + len(rows)].copy_(torch.from_numpy(rows))
        start += len(part)
    return faces


def faces_bytes(dataset: FaceDataset) -> int:
    """The memory that all faces of `dataset` take on the device."""
    return len(dataset) * dataset.size ** 2 * np.dtype(dataset.image_parts[0].dtype).itemsize


def free_memory(device: torch.device) -> int | None:
    """Free bytes on `device` (CUDA: the driver's count; CPU: MemAvailable); None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def choose_pipeline(pipeline: str, dataset: FaceDataset, device) -> str:
    """'device' or 'loader': `pipeline` unless 'auto', which takes the device pipeline when the faces
    fit in DEVICE_SHARE of the device's free memory."""
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    if pipeline != "auto":
        return pipeline
    free = free_memory(torch.device(device))
    return "device" if free is not None and faces_bytes(dataset) <= DEVICE_SHARE * free else "loader"


def batch_source(dataset: FaceDataset, remap, batch_size: int, device, pipeline: str = "auto",
                 num_workers: int = 0):
    """The batch source of `pipeline` ('auto', 'device' or 'loader') for the training faces."""
    if choose_pipeline(pipeline, dataset, device) == "device":
        need, free = faces_bytes(dataset), free_memory(torch.device(device))
        if free is not None and need > free:
            raise ValueError(f"pipeline 'device': the training faces take {need / 2**30:.1f} GiB, more than "
                             f"the {free / 2**30:.1f} GiB free on {device}; use --pipeline loader or auto")
        return DeviceBatches(dataset, remap, batch_size, device)
    return LoaderBatches(dataset, remap, batch_size, device, num_workers)


def batches_per_call(sampler, batch_size: int) -> int:
    """How many batches a batch source yields for `sampler` (for progress bars)."""
    return math.ceil(len(sampler) / batch_size)
