"""Where training batches come from: the per-sample loader, or every face resident on the training device.

    loader  FaceDataset through a DataLoader: one Python call and one OpenCV resize per face; works
            for any data size (the faces stay memory-mapped on disk).
    device  all training faces copied once onto the training device (GPU memory, or RAM on a CPU),
            in the cache's dtype; each batch is one gather of its crops and one bilinear resize of
            all of them, batch-wise on the device, with no per-sample Python.
    auto    device when the faces take at most DEVICE_SHARE of the device's free memory, else loader.

Both give the same batches for the same indices: the device pipeline takes the crop corners that
FaceDataset drew for the epoch and resizes them as it does (bilinear with half-pixel centres and edge
samples repeated: OpenCV's INTER_LINEAR, torch's bilinear interpolation without align_corners), so the
images agree to float32 rounding. The faces are kept in the dtype of
the cache (float32, or float16 with `ccnn preprocess --dtype float16`): the cache holds faces that
are already contrast-normalised, so quantising them to uint8 would change the training data.

A batch source is called with a sampler, or any iterable of dataset indices, and yields (images
(B, 1, S', S') float32, labels (B, Q) int64, model dataset index (B,)) on the device; the indices of
one call are drawn once, so a distributed sampler can hand each process its own share.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .data.torch_data import FaceDataset

PIPELINES = ("auto", "device", "loader")
DEVICE_SHARE = 0.5      # auto: the faces may take this share of the device's free memory


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
    """All faces of `dataset` as one tensor on `device`; each batch reads and resizes its crops of
    the dataset's current epoch (`dataset.set_epoch`) there."""

    name = "device"

    def __init__(self, dataset: FaceDataset, remap: torch.Tensor, batch_size: int, device):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.device = torch.device(device)
        self.faces = _faces_on_device(dataset, self.device)
        self.labels = torch.as_tensor(dataset.labels, dtype=torch.int64).to(self.device)
        remap = torch.as_tensor(remap, dtype=torch.int64)
        self.model_index = remap[torch.as_tensor(dataset.dataset_index, dtype=torch.int64)].to(self.device)
        crop, size = dataset.crop_size, dataset.size
        self._window = (torch.arange(crop)[:, None] * size + torch.arange(crop)).to(self.device)  # (c, c)
        self._epoch = None

    def _corners(self) -> torch.Tensor:
        """(N, 2) crop corners (row, column) of the dataset's current epoch, uploaded once per epoch."""
        if self._epoch != self.dataset.epoch:
            self._corner_table = torch.as_tensor(self.dataset.corners, dtype=torch.int64).to(self.device)
            self._epoch = self.dataset.epoch
        return self._corner_table

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, 1, S', S') float32 crops of the faces at `indices` (an int64 tensor on the device): the
        crops are read from the flat face table in one `take`, then resized together (they all have
        the same size) by torch's bilinear interpolation, which samples as OpenCV's INTER_LINEAR."""
        size = self.faces.shape[-1]
        corner = self._corners()[indices]
        start = (indices * size + corner[:, 0]) * size + corner[:, 1]           # (B,) first pixel
        crops = self.faces.view(-1).take(start[:, None, None] + self._window).float()[:, None]
        if crops.shape[-1] == self.dataset.out_size:
            return crops
        return F.interpolate(crops, size=(self.dataset.out_size,) * 2, mode="bilinear", align_corners=False)

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
            rows = np.array(part[a:a + 4096])  # a writable copy of the (read-only) rows
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
