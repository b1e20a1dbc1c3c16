"""The one training loop: determinism, divergence, attribute accuracy."""
import math

import torch

from bench.config import TrainSpec
from bench.data import DatasetSpec, build_dataset, make_loader
from bench.train import evaluate, train_and_evaluate
from fusion_models import build_model
from fusion_models.clip import ClipSpec

CLIP = ClipSpec(frames=4, height=32, width=32)
DS = DatasetSpec(train_size=64, val_size=32, cache=False)


def _train_once(seed=0):
    torch.manual_seed(seed)
    model = build_model("early_fusion", clip=CLIP, num_classes=16)
    val = build_dataset(DS, CLIP, split="val", seed=0)
    res = train_and_evaluate(
        model, make_loader(DS, CLIP, split="train", seed=seed, batch_size=16),
        make_loader(DS, CLIP, split="val", seed=seed, batch_size=32, shuffle=False),
        spec=TrainSpec(epochs=2, batch_size=16), seed=seed, class_attributes=val.class_attributes,
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
