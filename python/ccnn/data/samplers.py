"""The training samplers: shuffled epochs (joint SGD) and the balanced samplers of iterative
balanced-batch training (IBB, paper Algorithm 1), with `ibb_samplers` building IBB's set of them.

Each sampler yields `num_samples` indices per epoch, drawn from (seed, epoch) so a run is
reproducible and `set_epoch(e)` gives a new draw. The groups (subjects, levels of an AU, label pairs
of an edge, data sets) are visited in rounds: every round is a random permutation of all groups, so
each group gets num_samples / groups draws up to one. Within a group, members are drawn without
replacement in random order, starting a fresh permutation when a group is used up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _balanced_group_sequence(rng: np.random.Generator, groups: int, count: int) -> np.ndarray:
    rounds = -(-count // groups)
    return np.concatenate([rng.permutation(groups) for _ in range(rounds)])[:count]


class _EpochSampler(Sampler[int]):
    """num_samples draws per epoch, seeded by (seed, epoch); set_epoch selects the epoch."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples = _positive_int("num_samples", num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples


class EpochShuffleSampler(_EpochSampler):
    """A permutation of range(n) per epoch, drawn from (seed, epoch) alone with torch's generator;
    num_samples may exceed n (permutations laid end to end). Joint SGD's batches."""

    def __init__(self, n: int, num_samples: int, seed: int):
        self.n = _positive_int("n", n)
        super().__init__(num_samples, seed)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        reps = -(-self.num_samples // self.n)
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])[: self.num_samples]
        return iter(order.tolist())


class GroupBalancedSampler(_EpochSampler):
    """Equal shares of draws for each group of indices (the base of the samplers below)."""

    def __init__(self, groups: list[np.ndarray], num_samples: int, seed: int = 0, what: str = "group"):
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups if len(g)]
        if not self.groups:
            raise ValueError(f"no {what} with samples to balance over")
        super().__init__(num_samples, seed)

    def indices(self) -> np.ndarray:
        """The indices of the current epoch, as an array."""
        rng = np.random.default_rng([self.seed, self.epoch])
        sequence = _balanced_group_sequence(rng, len(self.groups), self.num_samples)
        out = np.empty(self.num_samples, dtype=np.int64)
        for g, members in enumerate(self.groups):
            slots = np.flatnonzero(sequence == g)
            cycles = -(-len(slots) // len(members))
            draws = np.concatenate([rng.permutation(members) for _ in range(cycles)]) if cycles else members[:0]
            out[slots] = draws[:len(slots)]
        return out

    def __iter__(self):
        return iter(self.indices().tolist())


class SubjectBalancedSampler(GroupBalancedSampler):
    """Equal shares per subject (step 1 of IBB: CNN weights)."""

    def __init__(self, subjects, num_samples: int, seed: int = 0):
        subjects = np.asarray(subjects).astype(str)
        if subjects.ndim != 1:
            raise ValueError(f"subjects must be 1-D (one per sample), got shape {subjects.shape}")
        _, inverse = np.unique(subjects, return_inverse=True)
        super().__init__([np.flatnonzero(inverse == k) for k in range(inverse.max(initial=-1) + 1)],
                         num_samples, seed, "subject")


def _labels_1d(name: str, labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array of levels (-1 = missing), got "
                         f"shape {labels.shape} dtype {labels.dtype}")
    return labels.astype(np.int64)


class LevelBalancedSampler(GroupBalancedSampler):
    """Equal shares per observed level of one AU; unlabelled samples (-1) are never drawn
    (step 2 of IBB: that AU's unary parameters)."""

    def __init__(self, labels_q, num_samples: int, seed: int = 0):
        labels_q = _labels_1d("labels_q", labels_q)
        levels = np.unique(labels_q[labels_q >= 0])
        super().__init__([np.flatnonzero(labels_q == level) for level in levels], num_samples, seed,
                         "observed level")
        self.levels = levels.tolist()


class PairBalancedSampler(GroupBalancedSampler):
    """Equal shares per observed label pair (y_r, y_s) of one edge; samples missing either label
    are never drawn (step 3 of IBB: that edge's copula parameter)."""

    def __init__(self, labels_r, labels_s, num_samples: int, seed: int = 0):
        labels_r, labels_s = _labels_1d("labels_r", labels_r), _labels_1d("labels_s", labels_s)
        if labels_r.shape != labels_s.shape:
            raise ValueError(f"labels_r and labels_s must have the same length, got {labels_r.shape} "
                             f"and {labels_s.shape}")
        both = (labels_r >= 0) & (labels_s >= 0)
        code = labels_r * 1000 + labels_s
        pairs = np.unique(code[both])
        super().__init__([np.flatnonzero(both & (code == c)) for c in pairs], num_samples, seed,
                         "observed label pair")
        self.pairs = [(int(c // 1000), int(c % 1000)) for c in pairs]


class MultiDatasetSampler(_EpochSampler):
    """Equal shares of draws from several data sets laid end to end (as in a FaceDataset of several
    FaceArrays): draws of samplers[d] are shifted by offsets[d]. A sampler that runs out is
    restarted with the next epoch number, so any num_samples can be served."""

    def __init__(self, samplers: list, offsets: list[int], num_samples: int, seed: int = 0):
        if not samplers or len(samplers) != len(offsets):
            raise ValueError(f"samplers and offsets must be non-empty and of equal length, got "
                             f"{len(samplers)} and {len(offsets)}")
        if any(isinstance(o, bool) or not isinstance(o, (int, np.integer)) or o < 0 for o in offsets):
            raise ValueError(f"offsets must be non-negative ints, got {offsets}")
        if any(len(s) == 0 for s in samplers):
            raise ValueError("every sampler must yield at least one index")
        self.samplers, self.offsets = list(samplers), [int(o) for o in offsets]
        super().__init__(num_samples, seed)

    def _stream(self, d: int):
        sampler, cycle = self.samplers[d], 0
        while True:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch * 1_000_003 + cycle)
            for index in sampler:
                yield int(index) + self.offsets[d]
            cycle += 1

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        sequence = _balanced_group_sequence(rng, len(self.samplers), self.num_samples)
        streams = [self._stream(d) for d in range(len(self.samplers))]
        return iter([next(streams[d]) for d in sequence.tolist()])


# ---- data-parallel training ------------------------------------------------------------------------------
def rank_part(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s part of every global batch of `batch_size` (a multiple of world_size): its
    batch_size / world_size consecutive positions. A last, shorter batch fills the parts in rank order,
    so a rank's part of it may be short or empty."""
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)


class RankShare(Sampler[int]):
    """This process's share of the batches of `sampler` in data-parallel training. Every rank draws the
    whole global stream from the same seed and epoch, cuts it into batches of `batch_size` and keeps
    its `rank_part` of each: the parts of one step are disjoint and together are exactly the batch of a
    single process, so the global batch has the single-process distribution and no sample twice more
    than it would have there. Read in batches of batch_size / world_size, a rank's stream gives its
    part of each step in order (and nothing for the steps whose part is empty, at the end)."""

    def __init__(self, sampler, batch_size: int, rank: int, world_size: int):
        self.sampler = sampler
        self.batch_size, self.world_size = _positive_int("batch_size", batch_size), _positive_int(
            "world_size", world_size)
        if self.batch_size % self.world_size:
            raise ValueError(f"the batch size ({batch_size}, the global batch) must be a multiple of the "
                             f"number of processes ({world_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.rank = int(rank)
        self.part = rank_part(self.batch_size, self.rank, self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def steps(self) -> int:
        """Optimisation steps per epoch (the same on every rank)."""
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        order = list(iter(self.sampler))
        mine = [order[a:a + self.batch_size][self.part] for a in range(0, len(order), self.batch_size)]
        return iter([i for part in mine for i in part])

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        local = self.batch_size // self.world_size
        return full * local + len(range(rest)[self.part])


# ---- IBB's samplers -------------------------------------------------------------------------------------
def dataset_blocks(dataset_index: np.ndarray, model_index) -> list[tuple[int, int, int]]:
    """[(model dataset index, start, stop)] of each data set's block of samples: dataset_index (N,) is
    each sample's data set (FaceDataset.dataset_index), model_index[d] the model's index of data set d.
    The samples of one data set must be contiguous."""
    blocks = []
    for d in range(len(model_index)):
        where = np.flatnonzero(dataset_index == d)
        if where.size and not np.array_equal(where, np.arange(where[0], where[-1] + 1)):
            raise ValueError("training samples of each dataset must be contiguous")
        if where.size:
            blocks.append((int(model_index[d]), int(where[0]), int(where[-1]) + 1))
    return blocks


def balance_weights(keys: np.ndarray, blocks) -> np.ndarray:
    """Per sample: (frequency of its key in its dataset) * (number of distinct keys there), i.e. the
    ratio of its natural to its balanced sampling probability; 0 where the key is missing (< 0)."""
    weights = np.zeros(len(keys))
    for _, a, b in blocks:
        block = keys[a:b]
        observed = block >= 0
        values, inverse, counts = np.unique(block[observed], return_inverse=True, return_counts=True)
        if values.size:
            weights[a:b][observed] = counts[inverse] / observed.sum() * values.size
    return weights


@dataclass
class IBBSamplers:
    """The samplers of one IBB iteration; None where a group has nothing to draw."""
    cnn: MultiDatasetSampler | None      # step 1: subject-balanced, equal shares per dataset
    unary: list                          # step 2: per AU, balanced over its observed levels
    unary_weights: list                  # per AU: balance_weights of its levels
    pairwise: list                       # step 3: per (dataset, edge) slot, balanced over label pairs
    pairwise_weights: list               # per slot: balance_weights of its label pairs


def ibb_samplers(labels: np.ndarray, subjects: np.ndarray, blocks, pairwise_slots, num_levels: int,
                 cnn_samples: int, unary_samples: int, pairwise_samples: int, seed: int) -> IBBSamplers:
    """IBB's samplers over training samples with labels (N, Q), subjects (N,) and dataset `blocks`
    (see dataset_blocks); pairwise_slots: the model's (dataset, r, s) slots. Each sampler has its own
    seed derived from `seed`, so adding an AU or an edge does not change the others' draws."""

    def combine(parts, num, group_seed):
        if not parts:
            return None
        samplers, offsets = zip(*parts)
        return MultiDatasetSampler(list(samplers), list(offsets), num, seed=group_seed)

    cnn = combine([(SubjectBalancedSampler(subjects[a:b], cnn_samples, seed=seed + 1 + i), a)
                   for i, (_, a, b) in enumerate(blocks)], cnn_samples, seed)
    unary, unary_weights = [], []
    for q in range(labels.shape[1]):
        parts = [(LevelBalancedSampler(labels[a:b, q], unary_samples, seed=seed + 1000 + 97 * q + i), a)
                 for i, (_, a, b) in enumerate(blocks) if (labels[a:b, q] >= 0).any()]
        unary.append(combine(parts, unary_samples, seed + 1000 + 97 * q))
        unary_weights.append(balance_weights(labels[:, q], blocks))
    pairwise, pairwise_weights = [], []
    for k, (d, r, s) in enumerate(pairwise_slots):
        parts = []
        for _, a, b in (blk for blk in blocks if blk[0] == d):
            both = (labels[a:b, r] >= 0) & (labels[a:b, s] >= 0)
            if both.any():
                parts.append((PairBalancedSampler(labels[a:b, r], labels[a:b, s], pairwise_samples,
                                                  seed=seed + 50_000 + 31 * k), a))
        pairwise.append(combine(parts, pairwise_samples, seed + 50_000 + 31 * k))
        observed = (labels[:, r] >= 0) & (labels[:, s] >= 0)
        pair = np.where(observed, labels[:, r] * num_levels + labels[:, s], -1)
        pairwise_weights.append(balance_weights(pair, blocks))
    return IBBSamplers(cnn, unary, unary_weights, pairwise, pairwise_weights)
