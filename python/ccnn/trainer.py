"""Training: joint SGD or iterative balanced batches (IBB, Algorithm 1), on one or several datasets.

    joint  every batch updates every parameter (shuffled batches over all training samples)
    ibb    one outer iteration = one epoch:
             step 1  CNN weights on subject-balanced batches (equal shares per dataset),
             step 2  each AU's unary parameters on batches balanced over that AU's observed levels,
             step 3  each (dataset, edge) pairwise parameter on batches balanced over the edge's
                     observed label pairs,
           each step minimising the whole composite NLL with the other parameters frozen (frozen
           parameters get no gradient, so SGD leaves them and their momentum untouched). In steps 2
           and 3 the CNN is frozen, so its features are computed once per iteration for the whole
           training set and reused (`_cache_features`): the same result, minus repeated forward passes.
           Steps 2 and 3 are cheap (heads only), so they run several batches per AU and per edge; by
           default the very first iteration starts with them (`ibb_heads_first`), so that step 1 does
           not back-propagate through untrained heads.

Each epoch ends with a validation pass (NLL, ICC, MAE), early stopping on the validation ICC, and a
checkpoint written atomically; `fit()` resumes from it and reproduces an uninterrupted run exactly
(every random draw of epoch e derives from (seed, e), and the RNG state is saved too). Logs go to
`log.jsonl` (one JSON object per line: "step", "epoch", "settings_changed" and "end" events). The
output folder is locked, described by run.json and checked before resuming (run_folder.py): every
file the run loads (checkpoint.pt, best.pt) carries its run id. Each epoch's summary also goes to the
`ccnn` logger as one line (console.py; the CLI shows it when it draws no progress bars).

Over 400 lines: the loop, validation, checkpoints and the IBB steps all work on the Trainer's state;
split into modules they would pass most of it around.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import ccnn_ext
import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_model
from .console import LOG, report_epoch
from .data.samplers import EpochShuffleSampler, RankShare, dataset_blocks, ibb_samplers, rank_part
from .data.torch_data import FaceDataset
from .device_pipeline import batch_source
from .inference import DecodeOptions, run_inference
from .losses import LOSS_TERM_NAMES, check_labels, composite_nll, require_labels
from .metrics import evaluate
from .model import CCNN
from .model_setup import dataset_remap, resolve_device
from .pruning import prune_and_report
from .run_folder import clean_temporaries, data_fingerprint, open_run, run_lock
from .train_config import TrainConfig
from .train_step import NetworkStep

_HEADS_FIRST_DRAW = 1_000_000  # sampler epoch of the initial head fit (distinct from every real epoch)


class TrainingDiverged(RuntimeError):
    """The model's outputs became non-finite or degenerate during training."""


@dataclass
class TrainResult:
    model: CCNN
    history: list = field(default_factory=list)   # one record per epoch (see log.jsonl)
    best_epoch: int | None = None
    out_dir: Path | None = None
    edges: dict = field(default_factory=dict)     # {dataset: (edges kept, edges before pruning)}


class Trainer:
    """Trains `model` on `train_faces` (FaceArrays or a list of them, one per dataset), validating on
    `val_faces` each epoch. Files in `out_dir`: checkpoint.pt (latest, for resuming), best.pt (best
    validation ICC), model.pt (final, pruned), log.jsonl."""

    def __init__(self, model: CCNN, train_faces, val_faces=None, config: TrainConfig | None = None,
                 out_dir=None, metadata: dict | None = None):
        self.config = config = config or TrainConfig()
        self.metadata = dict(metadata or {})  # saved in model.pt (the data split, say)
        config.validate()
        self.world, self.rank = distributed.world_size(), distributed.rank()
        if config.batch_size % self.world:
            raise ValueError(f"the batch size {config.batch_size} (the global batch of all processes) must "
                             f"be a multiple of the number of processes, {self.world}")
        self.progress = config.progress and distributed.is_main()  # rank 0 alone draws progress bars
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        train_faces = train_faces if isinstance(train_faces, (list, tuple)) else [train_faces]
        self.train_set = FaceDataset(train_faces, aus=model.aus, train=True, crop=config.crop,
                                     seed=config.seed)
        # bad labels are input errors, found here once; a ValueError in _loss then means divergence
        check_labels(torch.from_numpy(self.train_set.labels), len(model.aus), model.num_levels)
        require_labels(self.train_set.labels, "the training faces", "check the label columns of the data")
        self._faces = (train_faces, val_faces)
        self.train_remap = dataset_remap(self.train_set.dataset_names, model)
        self.batches = batch_source(self.train_set, self.train_remap, config.batch_size, self.device,
                                    config.pipeline, config.num_workers)
        self.network = NetworkStep(model, config.amp, config.compile, self.device)
        eval_set = FaceDataset(train_faces, aus=model.aus, train=False, crop=config.crop, seed=config.seed)
        n = len(eval_set)
        pick = np.random.default_rng(config.seed).permutation(n)[: min(n, config.train_eval_samples)]
        self.train_eval_set = Subset(eval_set, np.sort(pick).tolist())
        self.val_set, self.val_remap = None, None
        if val_faces is not None:
            val_faces = val_faces if isinstance(val_faces, (list, tuple)) else [val_faces]
            self.val_set = FaceDataset(val_faces, aus=model.aus, train=False, crop=config.crop,
                                       seed=config.seed)
            self.val_remap = dataset_remap(self.val_set.dataset_names, model)
            require_labels(self.val_set.labels, "the validation faces", "validation ICC and early "
                           "stopping need them: label them, or train without validation (--val-fraction 0)")
        l2 = config.l2 if isinstance(config.l2, (list, tuple)) else [config.l2] * len(model.aus)
        if len(l2) != len(model.aus):
            raise ValueError(f"l2 must be one value or one per AU ({len(model.aus)}), got {len(l2)}")
        self.lambdas = [float(v) for v in l2]
        self.decode_options = DecodeOptions(method=config.decode)
        pairwise = model.pairwise_parameters()
        others = [p for p in model.parameters() if all(p is not q for q in pairwise)]
        groups = [{"params": others}]
        if pairwise:
            groups.append({"params": pairwise, "lr": config.lr * config.pairwise_lr_scale})
        self.optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
        self._lr_scales = [1.0, config.pairwise_lr_scale][: len(groups)]
        # rank 0 alone writes files; the others take its state when it resumes (fit)
        self.out_dir = Path(out_dir) if out_dir is not None and distributed.is_main() else None
        self.samples_per_epoch = config.samples_per_epoch or len(self.train_set)
        self._build_samplers()
        self.epoch, self.global_step = 0, 0
        self.history, self.best_score, self.best_epoch, self.bad_epochs = [], -math.inf, None, 0
        self.stopped = False
        self.run_id = None

    # ---- samplers -------------------------------------------------------------------------------------
    def _build_samplers(self):
        cfg = self.config
        if cfg.mode == "joint":
            self.cnn_sampler = EpochShuffleSampler(len(self.train_set), self.samples_per_epoch, cfg.seed)
            self.unary_samplers, self.pairwise_samplers = [], []
            return
        blocks = dataset_blocks(self.train_set.dataset_index, self.train_remap)
        samplers = ibb_samplers(self.train_set.labels, self.train_set.subjects, blocks,
                                self.model.pairwise_slots(), self.model.num_levels, self.samples_per_epoch,
                                cfg.ibb_unary_batches * cfg.batch_size,
                                cfg.ibb_pairwise_batches * cfg.batch_size, cfg.seed)
        self.cnn_sampler = samplers.cnn
        self.unary_samplers, self.unary_weights = samplers.unary, samplers.unary_weights
        self.pairwise_samplers, self.pairwise_weights = samplers.pairwise, samplers.pairwise_weights

    # ---- one optimisation step ------------------------------------------------------------------------
    def _step(self, loss, params, share=1.0):
        """Gradient step on `params` only: other parameters get no .grad, so SGD skips them. The
        gradient norm is clipped per optimiser group (network and unaries; pairwise parameters).
        Several processes: `loss` is of this rank's part of the global batch (None: an empty part),
        `share` that part's fraction of the batch; the gradients of `params` are summed over the
        ranks with these weights, which gives every rank the gradient of the whole batch. Returns
        the batch's loss terms (total, unary, pairwise, regularisation) as a tensor."""
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            self.network.backward(loss.total, params)
            values = torch.stack([getattr(loss, k) for k in LOSS_TERM_NAMES]).detach()
        else:
            values = torch.zeros(4, device=self.device)
        values = distributed.sync_step(params, share, values)
        self.network.unscale(self.optimizer)
        if self.config.grad_clip:
            for group in self.optimizer.param_groups:
                grads = [p for p in group["params"] if p.grad is not None]
                if grads:
                    torch.nn.utils.clip_grad_norm_(grads, self.config.grad_clip)
        self.network.update(self.optimizer)
        return values

    def _loss(self, out, labels, sample_weight=None):
        """The composite NLL of a batch. Labels are checked in __init__, so a ValueError here means
        the model's outputs degenerated (non-finite, or thresholds collapsed): the run diverged, and
        the error says so instead of pointing into the copula ops."""
        try:
            return composite_nll(self.model, out, labels, self.lambdas, self.config.pairwise_weight,
                                 sample_weight, labels_checked=True)
        except ValueError as err:
            raise self._diverged(str(err)) from err

    def _check_loss(self, values: dict, step: str = "") -> None:
        """Raise TrainingDiverged when a step's loss (its terms by name) is not finite."""
        if not math.isfinite(values["total"]):
            term = next((k for k in LOSS_TERM_NAMES[1:] if not math.isfinite(values[k])), None)
            raise self._diverged(f"the loss{step} is {values['total']}" +
                                 (f" (its {term} term is {values[term]})" if term else ""), term)

    def _diverged(self, reason: str, term: str | None = None) -> "TrainingDiverged":
        advice = ("lower the L2 weight (l2)" if term == "regularisation" else
                  "lower the learning rate" + ("" if self.config.grad_clip else " or clip the gradients"))
        kept = "; the last checkpoint is kept" if self.out_dir is not None else ""
        return TrainingDiverged(f"training diverged in epoch {self.epoch + 1} (step {self.global_step}): "
                                f"{reason}; {advice}{kept}")

    def _train_cnn_batches(self, epoch, params, phase, log):
        """Joint SGD (params = all) or IBB step 1 (params = CNN weights); returns the images seen."""
        self.cnn_sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.model.train()
        seen, total, batch_size = 0, 0.0, self.config.batch_size
        share = RankShare(self.cnn_sampler, batch_size, self.rank, self.world)  # all of it in one process
        parts = iter(self.batches(share, batch_size // self.world))
        steps = -(-len(self.cnn_sampler) // batch_size)  # the same on every rank
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{self.config.epochs} {phase}", leave=False,
                   disable=not self.progress)
        for step in bar:
            batch = next(parts, None)  # None: this rank's part of the last batch is empty
            size = min(batch_size, len(self.cnn_sampler) - step * batch_size)  # the global batch
            loss, mine = None, 0
            if batch is not None:
                images, labels, d = batch
                loss = self._loss(self.model.head_forward(self.network.features(images), d), labels)
                mine = images.shape[0]
            values = self._step(loss, params, mine / size).tolist()  # the step's one synchronisation
            values = dict(zip(LOSS_TERM_NAMES, values))
            self.global_step += 1
            seen += size
            total += values["total"] * size
            self._check_loss(values)
            bar.set_postfix(loss=f"{values['total']:.3f}")
            log({"event": "step", "epoch": epoch, "iteration": self.global_step, "phase": phase, **values})
        self.train_loss = total / max(seen, 1)  # the epoch's mean training loss (IBB: of step 1)
        return seen

    @torch.no_grad()
    def _cache_features(self):
        """CNN features, labels and model dataset indices of every training sample (this epoch's crops);
        several processes compute a part each and exchange them."""
        self.model.eval()
        start, stop = distributed.shard(len(self.train_set))
        feats = [self.network.features(images)
                 for images, _, _ in self.batches(range(start, stop), self.config.eval_batch_size)]
        feats = torch.cat(feats) if feats else torch.zeros(0, self.model.features.fc.out_features,
                                                           device=self.device)
        if self.world > 1:
            feats = torch.from_numpy(distributed.gather_rows(feats.float().cpu().numpy())).to(self.device)
        labels = torch.from_numpy(self.train_set.labels).to(self.device)
        index = self.train_remap[torch.from_numpy(self.train_set.dataset_index)].to(self.device)
        return feats, labels, index

    def _train_head_batches(self, sampler, epoch, params, cache, weights=None, phase="an IBB step"):
        feats, labels, index = cache
        sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(sampler)), dtype=torch.int64, device=feats.device)
        if weights is not None and self.config.ibb_reweight:
            weights = torch.as_tensor(weights, dtype=feats.dtype, device=feats.device)
        else:
            weights = None
        part = rank_part(self.config.batch_size, self.rank, self.world)
        steps = []  # each step's loss terms, checked at the end (one synchronisation)

        def check_steps():
            for values in torch.stack(steps).tolist() if steps else []:
                self._check_loss(dict(zip(LOSS_TERM_NAMES, values)), f" of {phase}")

        try:
            for batch in order.split(self.config.batch_size):
                idx, loss = batch[part], None  # this rank's part of the batch
                if len(idx):
                    out = self.model.head_forward(feats[idx], index[idx])
                    loss = self._loss(out, labels[idx], None if weights is None else weights[idx])
                steps.append(self._step(loss, params, len(idx) / len(batch)))
        except TrainingDiverged:
            check_steps()  # (the cause: an earlier step whose loss was not finite)
            raise
        check_steps()

    def _train_heads(self, draw):
        """IBB steps 2 (each AU's unary parameters) and 3 (each edge's pairwise parameter) on the
        features of the current (frozen) CNN; `draw` selects the samplers' draw."""
        model = self.model
        cache = self._cache_features()
        for q, sampler in enumerate(self.unary_samplers):
            if sampler is not None:
                self._train_head_batches(sampler, draw, model.unary_parameters(q), cache, self.unary_weights[q],
                                         f"an IBB step of AU {model.aus[q]}'s unary parameters")
        for k, sampler in enumerate(self.pairwise_samplers):
            if sampler is not None:
                d, r, s = model.pairwise_slots()[k]
                self._train_head_batches(sampler, draw, model.pairwise_parameters(k), cache, self.pairwise_weights[k],
                                         f"an IBB step of the pairwise parameter of AUs {model.aus[r]} and "
                                         f"{model.aus[s]} in {model.dataset_names[d]}")

    def _train_epoch(self, epoch, log):
        model = self.model
        if self.config.mode == "joint":
            return self._train_cnn_batches(epoch, list(model.parameters()), "joint", log)
        if epoch == 0 and self.config.ibb_heads_first:
            self.train_set.set_epoch(0)
            self._train_heads(draw=_HEADS_FIRST_DRAW)
        seen = self._train_cnn_batches(epoch, model.cnn_parameters(), "cnn", log)
        self._train_heads(draw=epoch)
        return seen

    # ---- evaluation -----------------------------------------------------------------------------------
    def evaluate_set(self, dataset, remap, desc):
        preds, labels, nll = run_inference(self.model, dataset, remap, self.decode_options,
                                           self.config.eval_batch_size, self.device,
                                           progress=self.progress, desc=desc, split_ranks=True)
        return {"nll": nll, **evaluate(labels, preds, self.model.aus)}

    # ---- checkpoints ----------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "model_config": self.model.config(), "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(), "train_config": dataclasses.asdict(self.config),
            "epoch": self.epoch, "global_step": self.global_step, "history": self.history,
            "best_score": self.best_score, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "stopped": self.stopped, "rng_torch": torch.get_rng_state(), "run_id": self.run_id,
            "grad_scaler": self.network.state_dict(),
        }

    def _restore(self, payload: dict, path) -> None:
        if {"padding": "same", **payload["model_config"]} != self.model.config():  # older files lack it
            raise CheckpointError(f"checkpoint {str(path)!r} was written for a different model "
                                  f"(head, AUs, datasets or edges differ)")
        if "optimizer_state" not in payload:
            raise CheckpointError(f"checkpoint {str(path)!r} is a model file, not a training checkpoint")
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer_state"])
        torch.set_rng_state(payload["rng_torch"])
        self.network.load_state_dict(payload.get("grad_scaler"))
        self.epoch = payload["epoch"] + 1
        self.global_step = payload["global_step"]
        self.history = list(payload["history"])
        self.best_score, self.best_epoch = payload["best_score"], payload["best_epoch"]
        self.bad_epochs, self.stopped = payload["bad_epochs"], payload["stopped"]

    def _restore_shared(self, payload) -> None:
        """The other ranks: continue from rank 0's checkpoint (None: a fresh start)."""
        if payload is not None and not distributed.is_main():
            self._restore(payload, "the checkpoint of rank 0")

    def _path(self, name):
        return None if self.out_dir is None else self.out_dir / name

    # ---- the loop -------------------------------------------------------------------------------------
    def fit(self, resume: bool = True, allow_changed_settings: bool = False) -> TrainResult:
        """Train until `epochs` or early stopping. With an out_dir: hold its lock, remove temporaries
        of interrupted saves and resume from checkpoint.pt when it is this folder's run with the same
        settings (run_folder.open_run; other settings only with `allow_changed_settings`). Several
        processes: rank 0 does all of this and the others continue from its checkpoint, if any."""
        if self.out_dir is None:  # no files (or not rank 0)
            self._restore_shared(distributed.broadcast_from_main(None))
            return self._loop(lambda record: None)
        with run_lock(self.out_dir):
            clean_temporaries(self.out_dir)
            manifest, changes, resuming = open_run(self.out_dir, self.model.config(), self.config,
                                                   data_fingerprint(*self._faces), resume,
                                                   allow_changed_settings)
            self.run_id = manifest["run_id"]
            payload = None
            if resuming:
                ckpt = self._path("checkpoint.pt")
                payload = load_checkpoint(ckpt, map_location="cpu")
                if payload.get("run_id") != self.run_id:
                    raise CheckpointError(f"checkpoint {str(ckpt)!r} was not written by the run in run.json; "
                                          f"pass --no-resume to start afresh, or choose another --out")
                self._restore(payload, ckpt)
            distributed.broadcast_from_main(payload)
            self._rewrite_log()
            with open(self._path("log.jsonl"), "a") as log_file:
                def log(record):
                    log_file.write(json.dumps(record, default=str) + "\n")
                    log_file.flush()

                if changes:  # open_run also warned on stderr
                    log({"event": "settings_changed", "epoch": self.epoch,
                         "changes": {k: list(v) for k, v in changes.items()}})
                return self._loop(log)

    def _loop(self, log) -> TrainResult:
        if distributed.active():
            LOG.info(f"data parallel: {distributed.describe()}, global batch {self.config.batch_size} = "
                     f"{self.world} x {self.config.batch_size // self.world}, world_size {self.world}")
        with ccnn_ext.data_checks(ccnn_ext.data_checks_enabled() and self.device.type != "cuda"):
            while self.epoch < self.config.epochs and not self.stopped:
                self._run_epoch(log)
            return self._finish(log)

    def _set_learning_rate(self, epoch: int) -> None:
        """The learning rates of epoch `epoch` (a function of the epoch alone, so resuming is exact)."""
        cfg = self.config
        factor = 1.0
        if cfg.lr_schedule == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
        for group, scale in zip(self.optimizer.param_groups, self._lr_scales):
            group["lr"] = cfg.lr * scale * factor

    def _run_epoch(self, log):
        epoch = self.epoch
        self._set_learning_rate(epoch)
        start = time.perf_counter()
        seen = self._train_epoch(epoch, log)
        train_seconds = time.perf_counter() - start
        record = {"event": "epoch", "epoch": epoch, "iteration": self.global_step, "world_size": self.world,
                  "seconds": train_seconds, "images_per_s": seen / max(train_seconds, 1e-9),
                  "loss": self.train_loss,
                  "train": _summary(self.evaluate_set(self.train_eval_set, self.train_remap, "train eval"))}
        score = record["train"]["icc_avg"]
        if self.val_set is not None:
            record["val"] = _summary(self.evaluate_set(self.val_set, self.val_remap, "validation"))
            score = record["val"]["icc_avg"]
        score = -math.inf if math.isnan(score) else score
        improved = self.val_set is None or score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            if self.out_dir is not None:
                save_model(self._path("best.pt"), self.model, epoch=epoch, metrics=record, run_id=self.run_id)
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= self.config.patience and epoch + 1 >= self.config.min_epochs
        record["best_epoch"] = self.best_epoch
        self.history.append(record)
        log(record)
        report_epoch(record, self.config.epochs)
        if self.out_dir is not None:
            save_checkpoint(self._path("checkpoint.pt"), self._state())
        self.epoch += 1

    def _finish(self, log) -> TrainResult:
        best = self._path("best.pt")
        if best is not None and self.val_set is not None and self.best_epoch is not None:
            payload = load_checkpoint(best, map_location=self.device)  # only ever this run's best.pt
            if (payload.get("run_id"), payload.get("epoch")) != (self.run_id, self.best_epoch):
                raise CheckpointError(f"{str(best)!r} is not the best epoch ({self.best_epoch + 1}) of this "
                                      f"run; resume the run to write it again, or start afresh (--no-resume)")
            self.model.load_state_dict(payload["model_state"])
        if self.world > 1:  # rank 0's model (the best epoch's) on every rank
            state = {k: v.cpu() for k, v in self.model.state_dict().items()} if distributed.is_main() else None
            self.model.load_state_dict(distributed.broadcast_from_main(state))
        removed, edges = prune_and_report(self.model, self.config.prune_threshold)
        end = {"event": "end", "epochs": self.epoch, "best_epoch": self.best_epoch, "world_size": self.world,
               "pruned_edges": removed, "edges": sum(k for k, _ in edges.values())}
        log(end)
        if self.out_dir is not None:
            save_model(self._path("model.pt"), self.model, train_config=dataclasses.asdict(self.config),
                       best_epoch=self.best_epoch, history=self.history, run_id=self.run_id,
                       **self.metadata)
        return TrainResult(self.model, self.history, self.best_epoch, self.out_dir, edges)

    def _rewrite_log(self):
        """Keep only the log lines of the epochs that the (resumed) state has completed."""
        path = self._path("log.jsonl")
        if not path.exists():
            return
        kept = [line for line, record in _log_lines(path)
                if record.get("event") in ("step", "epoch", "settings_changed")
                and isinstance(record.get("epoch", 0), (int, float)) and record.get("epoch", 0) < self.epoch]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in kept))
        tmp.replace(path)


def _log_lines(path: Path):
    """(line, record) for each line of a log.jsonl that holds a JSON object; a line cut by an
    interruption, or edited into something else, is skipped."""
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield line, record


def log_records(path: Path) -> list[dict]:
    """The records of a log.jsonl (see _log_lines); [] when there is none."""
    return [record for _, record in _log_lines(path)] if path.exists() else []


def _summary(metrics: dict) -> dict:
    return {"nll": metrics["nll"], "icc_avg": metrics["icc_avg"], "mae_avg": metrics["mae_avg"],
            "per_au": metrics["per_au"]}


def fit(model: CCNN, train_faces, val_faces=None, config: TrainConfig | None = None, out_dir=None,
        resume: bool = True, allow_changed_settings: bool = False) -> TrainResult:
    """Train `model` (see Trainer); returns the trained, pruned model and its history."""
    return Trainer(model, train_faces, val_faces, config, out_dir).fit(resume, allow_changed_settings)
