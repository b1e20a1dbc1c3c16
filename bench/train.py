"""THE training loop and evaluation every model goes through (same optimizer, schedule, data order).

Returns plain results; never prints. Progress is reported through an optional callback
``progress(event: str, info: dict)`` with events ``epoch_start``, ``step``, ``epoch_end``, ``eval``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .config import TrainSpec

Progress = Callable[[str, dict], None]


@dataclass(frozen=True)
class EvalResult:
    """Validation metrics (fractions in [0, 1])."""

    acc_top1: float
    val_loss: float
    n: int
    per_class_acc: dict[str, float]
    attribute_acc: dict[str, float]           # e.g. {"shape": 0.98, "direction": 0.51} on the synthetic set
    video_acc_top1: float | None = None       # clip logits averaged per video (real datasets)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train_and_evaluate``: status ``ok`` or ``diverged`` plus metrics and history."""

    status: str
    error: str | None
    epochs_run: int
    train_time_s: float
    final_train_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    eval: EvalResult | None = None


def _lr_lambda(total_steps: int, schedule: str) -> Callable[[int], float]:
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"unknown schedule {schedule!r}; choose cosine or constant")


def _batch_len(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 0


def train_and_evaluate(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    *,
    spec: TrainSpec,
    seed: int,
    device: str | torch.device = "cpu",
    class_names: Sequence[str] | None = None,
    class_attributes: Sequence[dict[str, Any]] | None = None,
    progress: Progress | None = None,
    ddp: Any = None,
) -> TrainResult:
    """Train ``model`` with AdamW + per-step cosine decay for ``spec.epochs`` epochs, then evaluate.

    Loader items are ``(clips float [B, T, C, H, W], labels int64 [B])`` (optionally a third element:
    video index ``[B]`` for video-level accuracy). A non-finite loss stops training with status ``diverged``.
    ``ddp`` (a ``bench.distributed.DDPContext``): loaders are this rank's shards; the model is trained inside
    DistributedDataParallel with each rank's loss weighted so the gradient is the global-batch mean, and the
    returned losses and accuracies are over all ranks.
    """
    emit = progress or (lambda event, info: None)
    device = torch.device(device)
    torch.manual_seed(seed)  # dropout and any init done lazily draw from here: same for every model
    model.to(device)
    net = ddp.wrap(model, device) if ddp is not None else model
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    steps_per_epoch = _batch_len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(spec.epochs * max(steps_per_epoch, 1), spec.schedule))
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    last_loss = float("nan")
    for epoch in range(spec.epochs):
        net.train()
        emit("epoch_start", {"epoch": epoch, "epochs": spec.epochs, "steps": steps_per_epoch})
        total, count, correct = 0.0, 0, 0
        for step, batch in enumerate(train_loader):
            clips, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            logits = net(clips)
            loss = loss_fn(logits, labels)
            step_loss, backward_loss = loss.detach(), loss
            if ddp is not None:
                # One all-reduce gives the global loss (every rank agrees on divergence) and the global count,
                # which weights this rank's mean so DDP's gradient average is the global-batch mean.
                s = ddp.sum_(torch.stack([loss.detach().float() * labels.numel(),
                                          torch.tensor(float(labels.numel()), device=loss.device)]))
                step_loss = s[0] / s[1]
                backward_loss = loss * (labels.numel() * ddp.world_size / s[1].item())
            if not torch.isfinite(step_loss):
                return TrainResult(
                    status="diverged",
                    error=f"non-finite loss {step_loss.item()} at epoch {epoch} step {step}",
                    epochs_run=epoch,
                    train_time_s=time.perf_counter() - t0,
                    final_train_loss=float("nan"),
                    history=history,
                )
            opt.zero_grad(set_to_none=True)
            backward_loss.backward()
            if spec.grad_clip:
                nn.utils.clip_grad_norm_(net.parameters(), spec.grad_clip)
            opt.step()
            sched.step()
            total += loss.item() * labels.numel()
            count += labels.numel()
            correct += (logits.argmax(1) == labels).sum().item()
            emit("step", {"epoch": epoch, "step": step, "steps": steps_per_epoch, "loss": step_loss.item()})
        if ddp is not None:
            total, count, correct = ddp.sum_(torch.tensor([total, count, correct], dtype=torch.float64)).tolist()
        last_loss = total / max(count, 1)
        history.append({"epoch": epoch, "train_loss": last_loss, "train_acc": correct / max(count, 1)})
        emit("epoch_end", history[-1])
    train_time = time.perf_counter() - t0
    ev = evaluate(model, val_loader, device=device, class_names=class_names, class_attributes=class_attributes,
                  gather=ddp.gather if ddp is not None else None)
    emit("eval", {"acc_top1": ev.acc_top1})
    return TrainResult(
        status="ok", error=None, epochs_run=spec.epochs, train_time_s=train_time,
        final_train_loss=last_loss, history=history, eval=ev,
    )


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: str | torch.device = "cpu",
    class_names: Sequence[str] | None = None,
    class_attributes: Sequence[dict[str, Any]] | None = None,
    gather: Callable[[list], list] | None = None,
) -> EvalResult:
    """Top-1, loss, per-class accuracy and per-attribute accuracy (e.g. shape vs direction) on ``loader``.

    ``gather`` merges per-rank lists of batch outputs (DDP: each rank evaluates its shard)."""
    model.eval()
    device = torch.device(device)
    all_logits, all_labels, all_videos = [], [], []
    for batch in loader:
        logits = model(batch[0].to(device))
        all_logits.append(logits.float().cpu())
        all_labels.append(batch[1].cpu())
        if len(batch) > 2:
            all_videos.append(torch.as_tensor(batch[2]).cpu())
    if gather is not None:
        all_logits, all_labels, all_videos = gather(all_logits), gather(all_labels), gather(all_videos)
    if not all_logits:
        raise ValueError("evaluation loader yielded no batches")
    logits = torch.cat(all_logits)
    labels = torch.cat(all_labels)
    pred = logits.argmax(1)
    loss = nn.functional.cross_entropy(logits, labels).item()
    acc = (pred == labels).float().mean().item()
    k = logits.shape[1]
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    per_class = {}
    for c in range(k):
        mask = labels == c
        if mask.any():
            per_class[names[c]] = (pred[mask] == c).float().mean().item()
    attr_acc: dict[str, float] = {}
    if class_attributes:
        keys = sorted({key for a in class_attributes for key in a})
        for key in keys:
            truth = [class_attributes[i].get(key) for i in labels.tolist()]
            guess = [class_attributes[i].get(key) for i in pred.tolist()]
            attr_acc[key] = sum(t == g for t, g in zip(truth, guess)) / len(truth)
    video_acc = None
    if all_videos:
        videos = torch.cat(all_videos)
        uniq, inv = torch.unique(videos, return_inverse=True)
        summed = torch.zeros(len(uniq), k).index_add_(0, inv, logits.softmax(1))
        vlabel = torch.zeros(len(uniq), dtype=torch.long).index_copy_(0, inv, labels)
        video_acc = (summed.argmax(1) == vlabel).float().mean().item()
    return EvalResult(
        acc_top1=acc, val_loss=loss, n=len(labels), per_class_acc=per_class,
        attribute_acc=attr_acc, video_acc_top1=video_acc,
    )
