"""The one training loop: determinism, divergence, attribute accuracy."""
import math

import pytest
import torch

from bench.config import TrainSpec
from bench.data import DatasetSpec, build_dataset, make_loader
from bench.train import evaluate, train_and_evaluate
from fusion_models import build_model
from fusion_models.clip import ClipSpec

CLIP = ClipSpec(frames=4, height=32, width=32)
DS = DatasetSpec(train_size=64, val_size=32, cache=False)


def _train_once(seed=0, **spec):
    torch.manual_seed(seed)
    model = build_model("early_fusion", clip=CLIP, num_classes=16)
    val = build_dataset(DS, CLIP, split="val", seed=0)
    res = train_and_evaluate(
        model, make_loader(DS, CLIP, split="train", seed=seed, batch_size=16),
        make_loader(DS, CLIP, split="val", seed=seed, batch_size=32, shuffle=False),
        spec=TrainSpec(epochs=2, batch_size=16, **spec), seed=seed, class_attributes=val.class_attributes,
        class_names=val.class_names,
    )
    return res, model


def test_fixed_seed_is_bit_identical_on_cpu():
    a, ma = _train_once(0)
    b, mb = _train_once(0)
    assert a.status == b.status == "ok"
    assert a.final_train_loss == b.final_train_loss
    assert a.eval.acc_top1 == b.eval.acc_top1 and a.eval.val_loss == b.eval.val_loss
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)
    assert set(a.eval.attribute_acc) == {"shape", "direction"}
    assert len(a.history) == 2


def test_non_finite_loss_is_diverged_not_a_crash():
    model = build_model("pool_avg", clip=CLIP, num_classes=4)
    nan_batches = [(torch.full((2, *CLIP.shape), float("nan")), torch.tensor([0, 1]))]
    res = train_and_evaluate(model, nan_batches, nan_batches, spec=TrainSpec(epochs=1), seed=0)
    assert res.status == "diverged" and "non-finite" in res.error
    assert res.eval is None and math.isnan(res.final_train_loss)


def test_evaluate_attributes_and_video_accuracy():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # predicts class 0 always
            return torch.tensor([[1.0, 0.0, 0.0]]).repeat(x.shape[0], 1)

    attrs = [{"shape": "a", "direction": "l"}, {"shape": "a", "direction": "r"}, {"shape": "b", "direction": "l"}]
    x = torch.zeros(4, *CLIP.shape)
    labels = torch.tensor([0, 1, 2, 0])
    videos = torch.tensor([0, 0, 1, 2])
    ev = evaluate(Fixed(), [(x, labels, videos)], class_attributes=attrs, class_names=["x", "y", "z"])
    assert ev.acc_top1 == 0.5
    assert ev.attribute_acc == {"shape": 0.75, "direction": 0.75}
    assert ev.per_class_acc == {"x": 1.0, "y": 0.0, "z": 0.0}
    # video 0 holds labels 0 and 1 (last label wins as the video's label); video 1 wrong, video 2 right
    assert 0.0 <= ev.video_acc_top1 <= 1.0


# --------------------------------------------------------------------------- the plateau protocol
class _MeanLinear(torch.nn.Module):
    """logits = W mean_T,H,W(clip) + b: MACs a hand can count (Linear 3 -> K; no input gradient)."""

    def __init__(self, k=2, frozen=False):
        super().__init__()
        self.fc = torch.nn.Linear(3, k)
        self.frozen = frozen

    def forward(self, x):
        out = self.fc(x.mean(dim=(1, 3, 4)))
        # frozen: the output ignores the weights (0 * out keeps a gradient): a model that never improves
        return 0 * out + torch.tensor([1.0, 0.0]) if self.frozen else out


def _separable(n_batches=8, b=16, seed=0):
    """Class 0 dark clips, class 1 bright: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 2, (b,), generator=g)
        x = y.float().view(b, 1, 1, 1, 1) + 0.1 * torch.randn(b, 2, 3, 4, 4, generator=g)
        out.append((x, y))
    return out


def _plateau(model, *, ceiling=None, **kw):
    spec = TrainSpec(**{"lr": 0.05, "budget_steps": 400, "eval_every": 4, "patience": 3, **kw})
    return train_and_evaluate(model, _separable(), _separable(2, seed=1), spec=spec, seed=0,
                              stop_loader=_separable(2, seed=2), ceiling=ceiling)


def test_model_at_its_ceiling_stops_early():
    torch.manual_seed(0)
    res = _plateau(_MeanLinear(), ceiling=1.0)
    assert res.status == "ok" and res.stop_reason in ("ceiling", "plateau") and res.converged
    assert res.steps < 400 and res.curve[-1]["stop_acc"] >= 0.99
    torch.manual_seed(0)
    no_ceiling = _plateau(_MeanLinear(), ceiling=None)  # still stops: by plateau, not by the budget
    assert no_ceiling.stop_reason == "plateau" and no_ceiling.steps < 400


def test_tiny_budget_is_not_converged():
    torch.manual_seed(0)
    res = _plateau(_MeanLinear(), ceiling=1.0, budget_steps=2, lr=1e-6)
    assert res.stop_reason == "budget" and res.converged is False and res.steps == 2 and res.samples == 32
    assert res.curve[-1]["step"] == 2  # the last step is always evaluated


def test_model_that_never_improves_ends_by_patience():
    res = _plateau(_MeanLinear(frozen=True), ceiling=1.0, patience=3, eval_every=4)
    # first evaluation sets the best; 3 more without a new best end it
    assert res.stop_reason == "plateau" and res.steps == 4 * (1 + 3) and len(res.curve) == 4


class _Creeping(torch.nn.Module):
    """Each stopping evaluation gets exactly one more of its 32 clips right (+3.125 points an evaluation)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.evals = 0
        self.seen = 0

    def forward(self, x):
        out = self.fc(x.mean(dim=(1, 3, 4)))
        if self.training:
            return out
        if self.seen % 32 == 0:
            self.evals += 1
        self.seen += x.shape[0]
        idx = torch.arange(self.seen - x.shape[0], self.seen) % 32
        # clip i is right once `evals` > i: predict its class through the (bright or dark) clip mean
        right = (x.mean(dim=(1, 2, 3, 4)) > 0.5).long()
        pred = torch.where(idx < self.evals, right, 1 - right)
        return 0 * out + torch.nn.functional.one_hot(pred, 2).float()


def test_min_delta_counts_only_real_improvements():
    # +3.125 points an evaluation: each is a new best without min_delta (runs to the budget); with
    # min_delta = 10 points (3 more evaluations add 9.4 over the first), so patience (3) ends it at the 4th
    creep = _plateau(_Creeping(), ceiling=None, patience=3, eval_every=4, budget_steps=40)
    assert creep.stop_reason == "budget" and len(creep.curve) == 10
    strict = _plateau(_Creeping(), ceiling=None, patience=3, eval_every=4, budget_steps=40, min_delta=0.1)
    assert strict.stop_reason == "plateau" and strict.steps == 4 * (1 + 3)
    accs = [p["stop_acc"] for p in strict.curve]
    assert accs == sorted(accs) and len(set(accs)) == 4  # each evaluation was (slightly) better ...
    assert strict.selected_step == strict.steps  # ... and the best one is still the one evaluated


def test_learning_curve_compute_is_counted_forward_plus_backward():
    torch.manual_seed(0)
    res = _plateau(_MeanLinear(), ceiling=None, patience=100, budget_steps=20)
    # Linear(3 -> 2) on a batch of 16: forward 16*3*2 MACs; backward only the weight gradient (the input needs
    # none), another 16*3*2: 192 MACs a step, not 3x forward
    assert res.train_step_gmacs == pytest.approx(2 * 16 * 3 * 2 / 1e9)
    assert [p["step"] for p in res.curve] == [4, 8, 12, 16, 20]
    for p in res.curve:
        assert p["samples"] == 16 * p["step"]
        assert p["train_gmacs"] == pytest.approx(p["step"] * res.train_step_gmacs)
        assert {"stop_acc", "stop_loss", "train_loss", "wall_s"} <= set(p)


def test_stopping_split_shares_no_clip_with_fit_or_reported_split():
    from bench.data import carve_stopping_split

    train = build_dataset(DS, CLIP, split="train", seed=0)
    val = build_dataset(DS, CLIP, split="val", seed=0)
    fit, stop = carve_stopping_split(train, 0.25, seed=0)
    assert len(fit) + len(stop) == len(train) and not set(fit.indices) & set(stop.indices)
    # Clip content, not only indices: no stopping clip equals a reported (val) clip or a fitting clip.
    stop_clips = {stop.batch_uint8([(i, 0)])[0].numpy().tobytes() for i in range(len(stop))}
    val_clips = {val.batch_uint8([(i, 0)])[0].numpy().tobytes() for i in range(len(val))}
    fit_clips = {fit.batch_uint8([(i, 0)])[0].numpy().tobytes() for i in range(len(fit))}
    assert len(stop_clips) == len(stop) and not stop_clips & val_clips and not stop_clips & fit_clips
    again = carve_stopping_split(train, 0.25, seed=0)[1]
    assert again.indices == stop.indices  # the same carve for every model of a seed
    with pytest.raises(ValueError, match="--stop-fraction"):
        carve_stopping_split(train, 0.05, seed=0)  # 3 stopping clips: too few

def test_foreach_adamw_default_is_bit_identical_to_the_per_parameter_loop(monkeypatch):
    """The default optimizer is AdamW(foreach=True), an exact speed-up: same losses and weights as the loop."""
    a, ma = _train_once(0)
    real = torch.optim.AdamW
    seen = []

    def loop_adamw(params, **kw):
        seen.append(kw.pop("foreach", None))
        return real(params, foreach=False, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", loop_adamw)
    b, mb = _train_once(0)
    assert seen == [True]
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)


def test_compile_backend_compiles_the_training_forward_only_and_eager_capture_is_exact(monkeypatch):
    """``TrainSpec.compile_backend``: the training forward (and its backward) runs through torch.compile with that
    backend; evaluation and the stopping split stay eager. Dynamo's ``eager`` backend runs the captured graph op
    for op, so training equals plain eager training bit for bit (inductor fuses ops: not exact, an option)."""
    a, ma = _train_once(0)
    real = torch.compile
    seen, calls = [], []

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            calls.append(x.shape[0])
            return self.inner(x)

    def counting_compile(module, **kw):
        seen.append(kw.get("backend"))
        return Counting(real(module, **kw))

    monkeypatch.setattr(torch, "compile", counting_compile)
    b, mb = _train_once(0, compile_backend="eager")
    assert seen == ["eager"]
    assert len(calls) == b.steps  # one compiled call per training step: no evaluation went through it
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.eval.acc_top1 == b.eval.acc_top1
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)


def test_compile_backend_must_be_a_known_backend():
    with pytest.raises(ValueError, match="'nope' is not a torch.compile backend"):
        TrainSpec(compile_backend="nope")
    assert TrainSpec(compile_backend="inductor").compile_backend == "inductor"
