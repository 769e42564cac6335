"""The gradient exchange of data-parallel training on one small float64 problem: each of 2 gloo processes
takes its part of a batch, and `sync_step` must give both the gradient of the whole batch
(tests/test_distributed.py runs `worker` in spawned processes and compares with one process)."""
import torch
import torch.distributed as dist

from ccnn.data.samplers import rank_part
from ccnn.distributed import sync_step
from ccnn.losses import composite_nll
from ccnn.model_setup import build_model
from train_toy_data import toy_faces

BATCH = 4                            # the global batch size
CASES = [(size, group) for size in (4, 3, 2) for group in ("all", "unary1")]  # 3, 2: a last, short batch
LAMBDAS = 1e-3


def problem():
    """A float64 CCNN on two datasets and one batch of images, labels (-1 = missing) and dataset indices."""
    faces = [toy_faces("a", (1, 2, 4), seed=1), toy_faces("b", (2, 4, 6), subjects=3, seed=2)]
    model = build_model("copula", faces, seed=0).double()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 1, 16, 16, generator=g, dtype=torch.float64)
    labels = torch.randint(-1, 6, (BATCH, len(model.aus)), generator=g)
    return model, images, labels, torch.tensor([0, 1, 0, 1])


def group(model, name):
    """The parameters a step updates: all (joint training) or one AU's unary parameters (IBB step 2)."""
    return list(model.parameters()) if name == "all" else model.unary_parameters(1)


def loss_of(model, images, labels, index):
    return composite_nll(model, model(images, index), labels, [LAMBDAS] * len(model.aus))


def worker(rank, port, out):
    """Rank `rank` of 2, for every case: the loss and backward of its part of the first `size` samples
    (empty on rank 1 when size <= 2), then sync_step; saves the gradients and loss values to out.<rank>."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results = {}
    try:
        for size, name in CASES:
            model, images, labels, index = problem()
            params = group(model, name)
            idx = torch.arange(size)[rank_part(BATCH, rank, 2)]
            values = torch.zeros(4, dtype=torch.float64)
            if len(idx):
                loss = loss_of(model, images[idx], labels[idx], index[idx])
                loss.total.backward(inputs=params)
                values = torch.stack([loss.total, loss.unary, loss.pairwise, loss.regularisation]).detach()
            values = sync_step(params, len(idx) / size, values)
            results[size, name] = {"grads": [p.grad for p in params], "values": values}
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()
