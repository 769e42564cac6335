"""Data-parallel training over several processes launched by torchrun: who this process is, the
process group of the run, and the few collective operations that training and evaluation need.

    torchrun --nproc-per-node 2 -m ccnn.cli train ...    # sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*

`launch_from_env()` reads torchrun's variables (None: a plain single process). `process_group(device,
timeout)` starts torch.distributed for the run, nccl on CUDA (each process on GPU LOCAL_RANK) or gloo
on the CPU, with a finite timeout, and tears it down. While a group is up the helpers below work over
it; without one they are the single-process identities, so their callers need no branches:

    rank(), world_size(), is_main()     this process; is_main: rank 0, the one that logs and writes
    sync_step(params, share, values)    sum of every rank's gradients of `params` (weighted by its
                                        share of the global batch) and of the loss values: one all-reduce
    gather_rows(rows)                   every rank's rows (numpy), concatenated in rank order
    reduce_sum(values)                  a list of floats summed over the ranks
    shard(n)                            this rank's contiguous part [start, stop) of n items
    main_first(fn)                      the first process of each node runs fn first (fills caches)
    broadcast_from_main(value)          rank 0's value on every rank

A collective that fails raises `DistributedError`: another process stopped (an error, a kill; its
socket closes and gloo reports it at once) or did not answer within the timeout. Under torchrun the
launcher also stops every process as soon as one of them fails.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

DEFAULT_TIMEOUT = 300.0                 # seconds a collective waits for the other processes
DATA_TIMEOUT = timedelta(hours=24)      # main_first: the others wait for the data preparation
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_state: dict = {}                        # process_group's: its timeout and the group of main_first


class DistributedError(RuntimeError):
    """A collective operation failed: another process of the run stopped or did not answer in time."""


@dataclass(frozen=True)
class Launch:
    """This process in a torchrun launch."""
    rank: int
    world_size: int
    local_rank: int


def launch_from_env(environ=None) -> Launch | None:
    """The torchrun launch this process belongs to (RANK, WORLD_SIZE, LOCAL_RANK), or None."""
    env = os.environ if environ is None else environ
    present = [k for k in _ENV if k in env]
    if not present:
        return None
    if len(present) < len(_ENV):
        missing = [k for k in _ENV if k not in env]
        raise ValueError(f"incomplete torchrun environment: {', '.join(present)} set but not "
                         f"{', '.join(missing)}; launch with torchrun, or unset them to run one process")
    try:
        rank, world, local = (int(env[k]) for k in _ENV)
    except ValueError:
        raise ValueError(f"torchrun environment: RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         f"{[env[k] for k in _ENV]}") from None
    if not (world >= 1 and 0 <= rank < world and local >= 0):
        raise ValueError(f"torchrun environment: need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, got "
                         f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return Launch(rank, world, local)


def process_device(device: str, launch: Launch) -> torch.device:
    """The training device of this process: 'auto' or 'cuda' is GPU LOCAL_RANK when CUDA is present
    (else the CPU for 'auto'); 'cpu' is the CPU; an explicit 'cuda:N' only with one process per node."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device!r} requested but CUDA is not available")
    if device == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {launch.rank} has LOCAL_RANK {launch.local_rank} but this node has "
                             f"{torch.cuda.device_count()} GPUs; start at most that many processes per node")
        return torch.device("cuda", launch.local_rank)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local_world > 1:
        raise ValueError(f"--device {device} would put all {local_world} processes of a node on one GPU; "
                         f"use --device cuda (process k on GPU k) or auto")
    return torch.device(device)


@contextmanager
def process_group(device: str = "auto", timeout: float = DEFAULT_TIMEOUT):
    """Within: this torchrun process in its group (nccl on CUDA, gloo on the CPU), every collective
    bounded by `timeout` seconds. Yields (Launch, torch.device), or (None, None) without torchrun."""
    launch = launch_from_env()
    if launch is None:
        yield None, None
        return
    if not timeout > 0:
        raise ValueError(f"the distributed timeout must be positive seconds, got {timeout}")
    where = process_device(device, launch)
    backend = "nccl" if where.type == "cuda" else "gloo"
    if where.type == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout),
                            device_id=where if where.type == "cuda" else None)
    try:
        _state.update(timeout=timeout, data_group=dist.new_group(backend="gloo", timeout=DATA_TIMEOUT))
        yield launch, where
    finally:
        _state.clear()
        dist.destroy_process_group()


# ---- who am I --------------------------------------------------------------------------------------------
def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def describe() -> str:
    """'2 processes (gloo)' for the console log; '' for one plain process."""
    if not active():
        return ""
    return f"{world_size()} process{'es' * (world_size() > 1)} ({dist.get_backend()})"


# ---- collectives -----------------------------------------------------------------------------------------
def _collective(op, *args, **kwargs):
    try:
        return op(*args, **kwargs)
    except RuntimeError as exc:  # DistBackendError and gloo's connection errors are RuntimeErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistributedError(
            f"process {rank()} of {world_size()} lost the other processes of the run: one of them stopped "
            f"(an error, a kill: see its message) or did not answer within the timeout "
            f"({_state.get('timeout', DEFAULT_TIMEOUT):g} s, --dist-timeout) [{first}]") from exc


def _buffer_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sync_step(params, share: float, values: torch.Tensor) -> torch.Tensor:
    """After this rank's backward pass on its part of a global batch: every rank's gradients of
    `params`, each weighted by `share` (its part of the batch, so the sum is the gradient of the global
    batch's mean loss) and summed, in one all-reduce; `values` (a 1-D tensor, the loss terms) likewise.
    A parameter without a gradient on every rank keeps none (SGD skips it, as in one process)."""
    if not active():
        return values
    dtype = params[0].dtype if params else values.dtype
    grads = [p.grad.reshape(-1).to(dtype) * share if p.grad is not None else
             torch.zeros(p.numel(), dtype=dtype, device=values.device) for p in params]
    flags = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=values.device)
    flat = torch.cat([*grads, flags, values.to(dtype) * share]).to(_buffer_device())
    _collective(dist.all_reduce, flat)
    flat = flat.to(values.device)
    sizes = [p.numel() for p in params]
    summed = flat[:sum(sizes)].split(sizes)
    has_grad = flat[sum(sizes):sum(sizes) + len(params)].tolist()
    for p, g, has in zip(params, summed, has_grad):
        p.grad = g.view_as(p).to(p.dtype).clone() if has else None
    return flat[-values.numel():]


def reduce_sum(values) -> list[float]:
    """Each of `values` (floats) summed over the ranks, in float64."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_buffer_device())
    _collective(dist.all_reduce, t)
    return t.tolist()


def gather_rows(rows: np.ndarray) -> np.ndarray:
    """The rows of every rank (arrays of one trailing shape, any row count), concatenated by rank."""
    if not active():
        return rows
    parts = [None] * world_size()
    _collective(dist.all_gather_object, parts, np.asarray(rows))
    return np.concatenate(parts)


def shard(n: int) -> tuple[int, int]:
    """This rank's contiguous part [start, stop) of n items (sizes differ by at most one)."""
    size, r = world_size(), rank()
    return r * n // size, (r + 1) * n // size


def broadcast_from_main(value):
    """Rank 0's `value` (any picklable object) on every rank."""
    if not active():
        return value
    box = [value if is_main() else None]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


def main_first(fn):
    """fn() on every process, the first process of each node (LOCAL_RANK 0) before the others, which
    wait (up to DATA_TIMEOUT) so that they find its results in the on-disk caches."""
    if not active():
        return fn()
    leader = int(os.environ.get("LOCAL_RANK", rank())) == 0
    if leader:
        result = fn()
    _collective(dist.barrier, group=_state.get("data_group"))  # process_group's, with DATA_TIMEOUT
    return result if leader else fn()
