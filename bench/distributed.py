"""Data-parallel training with torch.distributed (DDP), launched by ``torchrun``.

    torchrun --nproc_per_node=N -m bench run ...          (or: bench run ... --nproc N)

    every rank: same spec, same seed -> same init -> DDP(model)
    global batch b of the shared loader  [k_0 ... k_{B-1}]  --shard-->  rank r gets k_{r*B/N} ... k_{(r+1)*B/N - 1}
    rank 0 only: reads the done keys (broadcast to all), writes records and run.json, and measures
                 params / FLOPs / latency / memory after the process group is gone (never under DDP)

Why the result equals a single-process run with the same global batch (up to float reassociation):
every rank sees a disjoint slice of the *same* global batch the single-process loader yields (augmentation is
keyed by (seed, index, epoch), not by rank); each rank's loss is scaled by ``n_rank * N / n_global`` so DDP's
gradient average is the global-batch mean even when the last batch splits unevenly; BatchNorm statistics span
all ranks (torch's ``SyncBatchNorm`` on CUDA, ``GlooSyncBatchNorm`` below on CPU, where torch has none).
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or SLURM + torchrun, or any launcher setting its env) started."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def torchrun_argv(nproc: int, bench_args: list[str]) -> list[str]:
    """``python -m torch.distributed.run --nproc_per_node=N -m bench <args>`` (torchrun, this interpreter)."""
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1 (processes on this machine), got {nproc}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "bench", *bench_args]


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """The per-rank batch of a global batch; raises ``ValueError`` when it does not divide evenly."""
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes; "
                         f"pick --batch-size a multiple of {world_size}")
    return global_batch // world_size


# --------------------------------------------------------------------------------------------- sampler
class ShardedBatchSampler(Sampler[list]):
    """Rank ``rank``'s contiguous slice of every batch of ``base`` (DistributedSampler for batch samplers).

    The union over ranks of each batch is the base batch, so N ranks together take the very steps a single
    process takes. ``drop_short=True`` (training) skips a batch smaller than the world size on every rank
    alike, so no rank waits in a collective for one that has nothing to do; evaluation keeps every item."""

    def __init__(self, base: Sampler, rank: int, world_size: int, *, drop_short: bool) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.base, self.rank, self.world_size, self.drop_short = base, rank, world_size, drop_short

    def _slice(self, batch: list) -> list:
        q, r = divmod(len(batch), self.world_size)
        start = self.rank * q + min(self.rank, r)
        return batch[start: start + q + (self.rank < r)]

    def __iter__(self) -> Iterator[list]:
        for batch in self.base:
            if self.drop_short and len(batch) < self.world_size:
                continue
            mine = self._slice(list(batch))
            if mine:
                yield mine

    def __len__(self) -> int:
        n = len(self.base)  # type: ignore[arg-type]
        if self.drop_short:
            size, bs = getattr(self.base, "n", None), getattr(self.base, "batch_size", None)
            if size is not None and bs and not getattr(self.base, "drop_last", False) and 0 < size % bs < self.world_size:
                n -= 1
        return n


def shard_loader(loader: DataLoader, rank: int, world_size: int, *, drop_short: bool) -> DataLoader:
    """The same loader (dataset, workers, pinning) over rank ``rank``'s shard of every batch."""
    return DataLoader(
        loader.dataset, batch_size=None, sampler=ShardedBatchSampler(loader.sampler, rank, world_size,
                                                                     drop_short=drop_short),
        num_workers=loader.num_workers, pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
    )


# ------------------------------------------------------------------------------------------- batchnorm
class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every rank, for CPU tensors (torch's SyncBatchNorm is GPU-only).

    Two autograd-aware all-reduces per call (sum and count, then squared deviations), so the backward pass
    all-reduces the statistics' gradients exactly as ``nn.SyncBatchNorm`` does. Eval uses running stats."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input [N, C, ...], got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        s = all_reduce(torch.cat([x.sum(dims), x.new_full((1,), x.numel() // c)]))
        n = s[c]
        mean = s[:c] / n
        var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp(min=1)), alpha=m)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """``module`` with every ``BatchNorm{1,2,3}d`` replaced (weights and running stats carried over)."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
            new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module


# --------------------------------------------------------------------------------------------- context
@dataclass
class DDPContext:
    """One rank of a torchrun job: who we are, and the few collectives the runner and training loop need."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, device: str | torch.device) -> nn.Module:
        """``DistributedDataParallel`` over ``model`` with cross-rank BatchNorm (converted in place)."""
        device = torch.device(device)
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model.to(device)
            return nn.parallel.DistributedDataParallel(model, device_ids=[device.index or torch.cuda.current_device()],
                                                       broadcast_buffers=False)
        model = GlooSyncBatchNorm.convert(model)
        # Synced BN keeps running stats identical on every rank: nothing to broadcast each forward.
        return nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place; returns ``t`` (NCCL needs a CUDA tensor: CPU ones travel and come back)."""
        x = t.cuda() if self.backend == "nccl" and not t.is_cuda else t
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        if x is not t:
            t.copy_(x)
        return t

    def gather(self, items: list) -> list:
        """Every rank's list, concatenated in rank order (picklable items, e.g. CPU tensors)."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, items)
        return [x for part in out for x in part]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, loader: DataLoader, *, drop_short: bool) -> DataLoader:
        return shard_loader(loader, self.rank, self.world_size, drop_short=drop_short)

    def close(self) -> None:
        """Barrier, then tear the process group down (after this nothing runs under DDP)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def init_from_env(device: str, *, timeout_s: float = 1800.0) -> DDPContext:
    """Join the torchrun job described by the environment: NCCL on CUDA, gloo on CPU.

    On CUDA each rank takes GPU ``LOCAL_RANK`` (so ``cuda`` in the spec means this rank's GPU)."""
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    backend = "gloo"
    if device.startswith("cuda"):
        if local >= torch.cuda.device_count():
            raise ValueError(f"local rank {local} has no GPU: {torch.cuda.device_count()} visible; "
                             f"use --nproc <= {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
        backend = "nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=_dt.timedelta(seconds=timeout_s))
    return DDPContext(rank=rank, world_size=world, local_rank=local, backend=backend)


__all__ = [
    "DDPContext", "GlooSyncBatchNorm", "ShardedBatchSampler", "init_from_env", "launched_by_torchrun",
    "per_rank_batch", "shard_loader", "torchrun_argv",
]
