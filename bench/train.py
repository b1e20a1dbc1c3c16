"""THE training loop and evaluation every model goes through (same optimizer, schedule, data order).

Returns plain results; never prints. Progress is reported through an optional callback
``progress(event: str, info: dict)`` with events ``epoch_start``, ``step``, ``epoch_end``, ``eval``.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .allocator import tune_malloc
from .config import TrainSpec
from .flow_cache import FlowCache, flow_cache_installed, freeze_flow_cache
from .measure._common import to_channels_last

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
    correct: str | None = None                # per-clip correctness in loader order, bench.measure.pack_correct


STOP_REASONS = ("plateau", "ceiling", "budget", "diverged")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train_and_evaluate``: status ``ok`` or ``diverged`` plus metrics, history and curve.

    ``stop_reason``: plateau | ceiling | budget | diverged; ``converged``: ended by plateau or ceiling.
    ``curve``: one dict per stopping evaluation (step, samples, train_gmacs, stop_acc, stop_loss,
    train_loss, wall_s); ``selected_step``: the step whose weights were evaluated (best stopping accuracy).
    """

    status: str
    error: str | None
    epochs_run: int
    train_time_s: float
    final_train_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    eval: EvalResult | None = None
    stop_reason: str = "budget"
    converged: bool = False
    steps: int = 0
    samples: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    selected_step: int | None = None
    train_step_gmacs: float | None = None     # counted forward + backward MACs of one full training batch
    train_gmacs_per_sample: float | None = None
    stop_n: int = 0
    flow_cache: dict[str, Any] | None = None  # FlowCache.stats() where the model's flow stage was cached


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


def _first_batch(loader: Iterable) -> Any:
    # A DataLoader over an EpochBatchSampler would advance the sampler's epoch; peek at the dataset instead.
    ds = getattr(loader, "dataset", None)
    sampler = getattr(loader, "batch_sampler", None) or getattr(loader, "sampler", None)
    if ds is not None and hasattr(sampler, "batch_size"):
        n = min(sampler.batch_size, len(ds))
        return ds[[(i, 0) for i in range(n)]]
    return next(iter(loader)) if isinstance(loader, (list, tuple)) else None


def _step_gmacs(model: nn.Module, loader: Iterable, device: torch.device) -> tuple[float | None, int]:
    """Counted forward + backward GMACs of one training step at the loader's batch, and that batch size."""
    from .measure import count_train_step_gmacs

    batch = _first_batch(loader)
    if batch is None:
        return None, 0
    clips, labels = batch[0].to(device), batch[1].to(device)
    if clips.dtype == torch.uint8:
        clips = clips.float().div_(255)
    counted = count_train_step_gmacs(model, clips, labels)
    return counted["train_step_gmacs"], int(labels.numel())


def _with_flow_cache(train: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """Serve ``model.flow`` from a per-run ``FlowCache`` while ``train`` runs (``spec.flow_cache_mib`` > 0).

    Exact: the cached flow is bit-identical to the recomputed one (bench/flow_cache.py), so it is on by default.
    The model gets its own flow stage back even when training raises (the runner measures costs on it).
    """
    @functools.wraps(train)
    def wrapper(model: nn.Module, *args: Any, spec: TrainSpec, **kwargs: Any) -> TrainResult:
        cache = FlowCache(spec.flow_cache_mib, spec.flow_cache_dir) if spec.flow_cache_mib > 0 else None
        with flow_cache_installed(model, cache) as installed:
            result = train(model, *args, spec=spec, **kwargs)
        return replace(result, flow_cache=cache.stats()) if installed and cache is not None else result

    return wrapper


@_with_flow_cache
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
    stop_loader: Iterable | None = None,
    ceiling: float | None = None,
) -> TrainResult:
    """Train ``model`` with AdamW + per-step cosine decay until it stops, then evaluate on ``val_loader``.

    Loader items are ``(clips float [B, T, C, H, W], labels int64 [B])`` (optionally a third element:
    video index ``[B]`` for video-level accuracy). Every ``spec.eval_every`` steps the model is evaluated on
    ``stop_loader`` (the stopping split, carved from the training data) and a point added to the curve.
    Training ends at the first of: no stopping accuracy more than ``spec.min_delta`` above the last counted
    improvement for ``spec.patience`` evaluations (plateau), stopping accuracy >=
    ``spec.ceiling_fraction * ceiling`` (ceiling), ``spec.budget_steps`` steps (budget), a non-finite loss (diverged: status ``diverged``). The weights of the best stopping
    evaluation are the ones evaluated. With ``spec.epochs`` set, exactly that many epochs run (no early
    stop, final weights); without a ``stop_loader`` the budget alone ends training.
    ``ddp`` (a ``bench.distributed.DDPContext``): loaders are this rank's shards; the model is trained inside
    DistributedDataParallel with each rank's loss weighted so the gradient is the global-batch mean, and the
    returned losses and accuracies are over all ranks (every rank takes the same stopping decision).
    """
    emit = progress or (lambda event, info: None)
    tune_malloc()  # exact: keeps the step's activations mapped (bench/allocator.py); idempotent
    device = torch.device(device)
    model.to(device)
    if spec.channels_last:  # 2D convs then run NHWC (the clip is flattened to [B T, C, H, W] inside the model)
        to_channels_last(model)  # 5-D (3-D conv) weights to channels_last_3d
    # Counted before seeding: the count runs on a copy and restores the RNG, so training is unchanged.
    step_gmacs, counted_batch = _step_gmacs(model, train_loader, device)
    gmacs_per_sample = step_gmacs / counted_batch if step_gmacs is not None and counted_batch else None
    torch.manual_seed(seed)  # dropout and any init done lazily draw from here: same for every model
    net = ddp.wrap(model, device) if ddp is not None else model
    if spec.compile_backend:  # training forward + backward only; evaluation and the stopping split run `model` eager
        net = torch.compile(net, backend=spec.compile_backend)
    # foreach: the multi-tensor AdamW is bit-identical to the per-parameter loop (tests/bench/test_train.py) and
    # its step ran 1.6x faster (pool_avg, 61k params, 1 thread); on CPU torch defaults to the loop.
    opt_kwargs = {"fused": True} if spec.fused_adamw else {"foreach": True}
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, **opt_kwargs)
    steps_per_epoch = max(_batch_len(train_loader), 1)
    fixed = spec.fixed_length
    budget = spec.epochs * steps_per_epoch if fixed else spec.budget_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(budget, spec.schedule))
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    curve: list[dict[str, float]] = []
    gather = ddp.gather if ddp is not None else None
    world = ddp.world_size if ddp is not None else 1
    t0 = time.perf_counter()
    last_loss = float("nan")
    step = samples = epoch = 0
    best_acc, best_step, best_state, since_best = -1.0, None, None, 0
    patience_ref = -1.0  # the stopping accuracy patience counts from (raised only by more than spec.min_delta)
    stop_reason, stop_n = "budget", 0
    window_loss, window_n = 0.0, 0

    def stopping_eval() -> str | None:
        """Evaluate on the stopping split, add a curve point; the reason to stop now, if any."""
        nonlocal best_acc, best_step, best_state, since_best, stop_n, window_loss, window_n, patience_ref
        point: dict[str, Any] = {
            "step": step, "samples": samples, "epoch": samples / max(len_train, 1),
            "train_gmacs": gmacs_per_sample * samples if gmacs_per_sample is not None else None,
            "train_loss": window_loss / window_n if window_n else None, "lr": sched.get_last_lr()[0],
        }
        window_loss, window_n = 0.0, 0
        reason = None
        if stop_loader is not None:
            ev = evaluate(model, stop_loader, device=device, gather=gather)
            stop_n = ev.n
            point.update(stop_acc=ev.acc_top1, stop_loss=ev.val_loss)
            if ev.acc_top1 > best_acc:  # the weights evaluated at the end: the best stopping accuracy seen
                best_acc, best_step = ev.acc_top1, step
                if not fixed:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if ev.acc_top1 > patience_ref + spec.min_delta:  # patience restarts only on a real improvement
                patience_ref, since_best = ev.acc_top1, 0
            else:
                since_best += 1
            if not fixed:
                if spec.ceiling_stop and ceiling is not None and ev.acc_top1 >= spec.ceiling_fraction * ceiling:
                    reason = "ceiling"
                elif since_best >= spec.patience:
                    reason = "plateau"
        point["wall_s"] = time.perf_counter() - t0
        curve.append(point)
        emit("stop_eval", point)
        net.train()
        return reason

    len_train = _dataset_len(train_loader) * world
    done = budget == 0
    while not done:
        net.train()
        emit("epoch_start", {"epoch": epoch, "epochs": -(-budget // steps_per_epoch), "steps": steps_per_epoch})
        total, count, correct = 0.0, 0, 0
        for batch in train_loader:
            clips, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            logits = net(clips)
            loss = loss_fn(logits, labels)
            step_loss, backward_loss = loss.detach(), loss
            n_global = labels.numel()
            if ddp is not None:
                # One all-reduce gives the global loss (every rank agrees on divergence) and the global count,
                # which weights this rank's mean so DDP's gradient average is the global-batch mean.
                s = ddp.sum_(torch.stack([loss.detach().float() * labels.numel(),
                                          torch.tensor(float(labels.numel()), device=loss.device)]))
                step_loss = s[0] / s[1]
                n_global = int(s[1].item())
                backward_loss = loss * (labels.numel() * ddp.world_size / s[1].item())
            if not torch.isfinite(step_loss):
                return TrainResult(
                    status="diverged",
                    error=f"non-finite loss {step_loss.item()} at epoch {epoch} step {step}",
                    epochs_run=epoch,
                    train_time_s=time.perf_counter() - t0,
                    final_train_loss=float("nan"),
                    history=history, stop_reason="diverged", converged=False, steps=step, samples=samples,
                    curve=curve, train_step_gmacs=step_gmacs, train_gmacs_per_sample=gmacs_per_sample,
                )
            opt.zero_grad(set_to_none=True)
            backward_loss.backward()
            if spec.grad_clip:
                nn.utils.clip_grad_norm_(net.parameters(), spec.grad_clip)
            opt.step()
            sched.step()
            step += 1
            samples += n_global
            loss_value = loss.item()
            total += loss_value * labels.numel()
            count += labels.numel()
            window_loss += step_loss.item() * n_global
            window_n += n_global
            correct += (logits.argmax(1) == labels).sum().item()
            emit("step", {"epoch": epoch, "step": step - epoch * steps_per_epoch - 1, "steps": steps_per_epoch,
                          "loss": step_loss.item()})
            reason = None
            if step % spec.eval_every == 0 or step == budget:
                reason = stopping_eval()
            if reason is not None or step >= budget:
                stop_reason = reason or "budget"
                done = True
                break
        if ddp is not None:
            total, count, correct = ddp.sum_(torch.tensor([total, count, correct], dtype=torch.float64)).tolist()
        if count:
            last_loss = total / count
            history.append({"epoch": epoch, "train_loss": last_loss, "train_acc": correct / count})
            emit("epoch_end", history[-1])
        epoch += 1
        if count == 0:
            break  # an empty loader: nothing more to train on
    train_time = time.perf_counter() - t0
    if best_state is not None and best_step != step:
        model.load_state_dict(best_state)
    selected = best_step if best_state is not None else step
    freeze_flow_cache(model)  # validation clips are evaluated once: compute their flow, do not store it
    ev = evaluate(model, val_loader, device=device, class_names=class_names, class_attributes=class_attributes,
                  gather=gather)
    emit("eval", {"acc_top1": ev.acc_top1})
    return TrainResult(
        status="ok", error=None, epochs_run=epoch, train_time_s=train_time,
        final_train_loss=last_loss, history=history, eval=ev, stop_reason=stop_reason,
        converged=stop_reason in ("plateau", "ceiling"), steps=step, samples=samples, curve=curve,
        selected_step=selected, train_step_gmacs=step_gmacs, train_gmacs_per_sample=gmacs_per_sample,
        stop_n=stop_n,
    )


def _dataset_len(loader: Iterable) -> int:
    try:
        return len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return 0


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
    from .measure import pack_correct

    return EvalResult(
        acc_top1=acc, val_loss=loss, n=len(labels), per_class_acc=per_class,
        attribute_acc=attr_acc, video_acc_top1=video_acc, correct=pack_correct((pred == labels).numpy()),
    )
