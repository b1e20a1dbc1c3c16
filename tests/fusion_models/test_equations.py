"""Every equation in the notes (§2-§4, §6, §8, §9), recomputed by hand on tiny tensors and compared
with the modules. Two-stream equations (§7-§8 at model level) are in test_two_stream.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusion_models import ClipSpec, build_model
from fusion_models.layers import (
    ClassifierHead,
    ConvFusion,
    ConvLSTM,
    ConvLSTMCell,
    GatedFusion,
    LSTMAggregator,
    TemporalDifference,
    TemporalPool,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

close = torch.testing.assert_close


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny(frames: int = 3, size: int = 16) -> ClipSpec:
    return ClipSpec(frames=frames, height=size, width=size)


# ---- classifier g_phi -------------------------------------------------------------------------------

def test_classifier_head_is_dropout_then_linear():
    head = ClassifierHead(6, 4, dropout=0.5)
    x = torch.randn(3, 6)
    close(head.eval()(x), x @ head.fc.weight.T + head.fc.bias)
    assert head.output_dim == 4
    head.train()
    torch.manual_seed(1)
    dropped = head(x)
    torch.manual_seed(1)
    close(dropped, F.dropout(x, 0.5, training=True) @ head.fc.weight.T + head.fc.bias)


# ---- §4 temporal pooling ------------------------------------------------------------------------------

def test_average_and_max_pooling():
    x = torch.randn(2, 5, 7)
    close(TemporalPool(7, "avg")(x), sum(x[:, t] for t in range(5)) / 5)
    hand = x[:, 0]
    for t in range(1, 5):
        hand = torch.maximum(hand, x[:, t])
    close(TemporalPool(7, "max")(x), hand)


def test_attention_pooling_matches_the_formula():
    pool = TemporalPool(7, "attn")
    x = torch.randn(2, 5, 7)
    out, alpha = pool(x, return_weights=True)
    w = pool.score.weight.detach().squeeze(0)  # [D]
    s = torch.stack([x[:, t] @ w for t in range(5)], dim=1)  # s_t = w^T x_t      [B, T]
    e = torch.exp(s)
    hand_alpha = e / e.sum(dim=1, keepdim=True)  # alpha_t = e^{s_t} / sum_j e^{s_j}
    close(alpha, hand_alpha)
    close(alpha.sum(dim=1), torch.ones(2))
    close(out, sum(hand_alpha[:, t : t + 1] * x[:, t] for t in range(5)))  # x = sum_t alpha_t x_t
    assert pool.score.bias is None and pool.output_dim == 7


def test_pool_weights_sum_to_one_for_every_mode():
    x = torch.randn(2, 4, 3)
    for mode in ("avg", "max", "attn"):
        _, w = TemporalPool(3, mode)(x, return_weights=True)
        close(w.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="mode"):
        TemporalPool(3, "median")


@pytest.mark.parametrize("name,mode", [("pool_avg", "avg"), ("pool_max", "max"), ("pool_attn", "attn")])
def test_pooling_models_are_head_of_pooled_per_frame_features(name, mode):
    model = build_model(name, clip=tiny(4), num_classes=3).eval()
    clip = tiny(4).dummy(2)
    with torch.no_grad():
        x_t = torch.stack([model.backbone(clip[:, t]) for t in range(4)], dim=1)  # x_t = f(I_t)
        hand = model.head(TemporalPool.forward(model.aggregator, x_t))
        close(model(clip), hand)


# ---- §1/§3 single frame and late fusion -----------------------------------------------------------------

def test_single_frame_reads_only_the_middle_frame():
    model = build_model("single_frame", clip=tiny(5), num_classes=3).eval()
    clip = tiny(5).dummy(2)
    other = torch.rand_like(clip)
    other[:, 2] = clip[:, 2]  # T//2 = 2
    with torch.no_grad():
        close(model(clip), model(other))
        close(model(clip), model.head(model.backbone(clip[:, 2])))


def test_late_fusion_is_the_mean_of_per_frame_logits():
    model = build_model("late_fusion", clip=tiny(3), num_classes=4).eval()
    clip = tiny(3).dummy(2)
    with torch.no_grad():
        z_t = [model.head(model.backbone(clip[:, t])) for t in range(3)]  # z_t = g(f(I_t))
        close(model(clip), sum(z_t) / 3)


def test_late_fusion_with_one_frame_equals_single_frame():
    clip = ClipSpec(frames=1, height=32, width=32)
    sf = build_model("single_frame", clip=clip, num_classes=6).eval()
    lf = build_model("late_fusion", clip=clip, num_classes=6).eval()
    lf.load_state_dict(sf.state_dict())  # same backbone and head weights
    x = clip.dummy(3)
    with torch.no_grad():
        close(lf(x), sf(x))


# ---- §2 early fusion ---------------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [1, 2, 4, 8, 16])
def test_early_fusion_first_conv_parameter_count(frames):
    model = build_model("early_fusion", clip=ClipSpec(frames=frames), num_classes=5)
    ref = build_model("early_fusion", clip=ClipSpec(frames=1), num_classes=5)
    conv = model.backbone.first_conv
    k = conv.kernel_size[0]
    assert conv.weight.numel() == k * k * (3 * frames) * conv.out_channels  # #W = k^2 (3T) C_out
    first = f"backbone.features.{model.backbone._first_conv_path}.weight"
    sd, sd_ref = model.state_dict(), ref.state_dict()
    assert set(sd) == set(sd_ref)
    for key in sd:
        if key != first:
            assert sd[key].shape == sd_ref[key].shape, key  # every later layer is unchanged
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in ref.parameters())
    assert extra == k * k * 3 * (frames - 1) * conv.out_channels


def test_early_fusion_stacks_frames_channel_major_by_frame():
    model = build_model("early_fusion", clip=tiny(3), num_classes=3).eval()
    clip = tiny(3).dummy(2)
    x = torch.cat([clip[:, 0], clip[:, 1], clip[:, 2]], dim=1)  # concat_channel(I_1, I_2, I_3) [B, 3T, H, W]
    with torch.no_grad():
        close(model(clip), model.head(model.backbone(x)))


# ---- §6 LSTM -----------------------------------------------------------------------------------------

def test_lstm_matches_the_six_equations():
    d, hdim, steps = 4, 3, 5
    agg = LSTMAggregator(d, hdim)
    lstm = agg.lstm
    x = torch.randn(2, steps, d)
    w_ih, w_hh = lstm.weight_ih_l0.detach(), lstm.weight_hh_l0.detach()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    # PyTorch stacks the gates as i, f, g (= c~), o
    (W_xi, W_xf, W_xc, W_xo), (W_hi, W_hf, W_hc, W_ho) = w_ih.split(hdim), w_hh.split(hdim)
    b_i, b_f, b_c, b_o = b.split(hdim)
    h = torch.zeros(2, hdim)
    c = torch.zeros(2, hdim)
    for t in range(steps):
        xt = x[:, t]
        i = torch.sigmoid(xt @ W_xi.T + h @ W_hi.T + b_i)
        f = torch.sigmoid(xt @ W_xf.T + h @ W_hf.T + b_f)
        o = torch.sigmoid(xt @ W_xo.T + h @ W_ho.T + b_o)
        c_tilde = torch.tanh(xt @ W_xc.T + h @ W_hc.T + b_c)
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
    close(agg(x), h)
    assert agg.output_dim == hdim


def test_lstm_model_classifies_the_last_hidden_state():
    model = build_model("lstm", clip=tiny(3), num_classes=3).eval()
    clip = tiny(3).dummy(2)
    with torch.no_grad():
        out, _ = model.aggregator.lstm(model.backbone.per_frame(clip))
        close(model(clip), model.head(out[:, -1]))


# ---- §6 ConvLSTM -------------------------------------------------------------------------------------

def test_conv_lstm_matches_the_six_equations_with_separate_convolutions():
    cx, ch, steps = 3, 2, 4
    rnn = ConvLSTM(cx, ch, kernel_size=3)
    x = torch.randn(2, steps, cx, 5, 6)
    w, bias = rnn.cell.conv.weight.detach(), rnn.cell.conv.bias.detach()
    assert w.shape == (4 * ch, cx + ch, 3, 3)
    # the fused kernel is [W_x* | W_h*] stacked over the gates in ConvLSTMCell.GATES order
    gates = dict(zip(ConvLSTMCell.GATES, range(4)))
    Wx = {g: w[k * ch : (k + 1) * ch, :cx] for g, k in gates.items()}
    Wh = {g: w[k * ch : (k + 1) * ch, cx:] for g, k in gates.items()}
    b = {g: bias[k * ch : (k + 1) * ch] for g, k in gates.items()}

    def pre(g, X, H):  # W_xg * X_t + W_hg * H_{t-1} + b_g, each a conv of its own
        return F.conv2d(X, Wx[g], padding=1) + F.conv2d(H, Wh[g], padding=1) + b[g].view(1, -1, 1, 1)

    H = torch.zeros(2, ch, 5, 6)
    C = torch.zeros(2, ch, 5, 6)
    for t in range(steps):
        X = x[:, t]
        I = torch.sigmoid(pre("I", X, H))
        Fg = torch.sigmoid(pre("F", X, H))
        O = torch.sigmoid(pre("O", X, H))
        C_tilde = torch.tanh(pre("C", X, H))
        C = Fg * C + I * C_tilde
        H = O * torch.tanh(C)
    close(rnn(x), H)
    assert rnn.output_dim == ch


def test_conv_lstm_model_pools_the_last_hidden_map():
    model = build_model("conv_lstm", clip=tiny(3), num_classes=3).eval()
    clip = tiny(3).dummy(2)
    with torch.no_grad():
        close(model(clip), model.head(model.aggregator[0](model.backbone.per_frame_maps(clip)).mean(dim=(2, 3))))


# ---- §8 fusion ops -----------------------------------------------------------------------------------

def test_conv_fusion_is_a_1x1_conv_of_the_concatenation():
    fuse = ConvFusion(4, 4, 4)
    fs, ft = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    W = fuse.mix.weight.detach()[:, :, 0, 0]  # [D, 2D]
    Fcat = torch.cat([fs, ft], dim=1)  # F = concat(Fs, Ft)
    hand = torch.einsum("oc,bchw->bohw", W, Fcat) + fuse.mix.bias.detach().view(1, -1, 1, 1)  # W_1x1 * F
    close(fuse(fs, ft), hand)
    assert fuse.output_dim == 4 and fuse.mix.kernel_size == (1, 1)


@pytest.mark.parametrize("kernel", [1, 3])
def test_gated_fusion_matches_the_formula(kernel):
    fuse = GatedFusion(4, kernel_size=kernel)
    fs, ft = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    G = torch.sigmoid(F.conv2d(torch.cat([fs, ft], 1), fuse.gate.weight, fuse.gate.bias, padding=kernel // 2))
    out, gate = fuse(fs, ft, return_gate=True)
    close(gate, G)
    close(out, G * fs + (1 - G) * ft)
    assert fuse.output_dim == 4


def test_gated_fusion_with_gate_one_is_the_spatial_stream():
    fuse = GatedFusion(4)
    with torch.no_grad():
        fuse.gate.weight.zero_()
        fuse.gate.bias.fill_(100.0)  # sigma(100) == 1.0 in float32
    fs, ft = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    close(fuse(fs, ft), fs, rtol=0, atol=0)


# ---- §9 hidden two-stream ----------------------------------------------------------------------------

def test_temporal_difference_is_x_t_minus_x_t_minus_1():
    x = torch.randn(2, 4, 3, 2, 2)
    d = TemporalDifference()(x)
    assert d.shape == (2, 3, 3, 2, 2)
    for t in range(1, 4):
        close(d[:, t - 1], x[:, t] - x[:, t - 1])
    with pytest.raises(ValueError, match="at least 2 frames"):
        TemporalDifference()(x[:, :1])


def test_hidden_two_stream_maps_by_hand():
    model = build_model("hidden_two_stream", clip=tiny(4), num_classes=3).eval()
    assert model.difference == "maps"
    clip = tiny(4).dummy(2)
    with torch.no_grad():
        X = [model.backbone.maps(clip[:, t]) for t in range(4)]  # X_t [B, D, h, w]
        a = sum(x.mean(dim=(2, 3)) for x in X) / 4  # appearance: mean_t GAP(X_t)
        dX = [X[t] - X[t - 1] for t in range(1, 4)]  # dX_t = X_t - X_{t-1}
        m = sum(model.motion(d).mean(dim=(2, 3)) for d in dX) / 3
        close(model(clip), model.head(torch.cat([a, m], dim=1)))


def test_hidden_two_stream_pooled_by_hand():
    model = build_model("hidden_two_stream_pooled", clip=tiny(4), num_classes=3).eval()
    assert model.difference == "pooled"
    clip = tiny(4).dummy(2)
    with torch.no_grad():
        x = [model.backbone(clip[:, t]) for t in range(4)]  # x_t [B, D]
        dx = [x[t] - x[t - 1] for t in range(1, 4)]  # dx_t = x_t - x_{t-1}
        m = sum(model.motion(d) for d in dx) / 3
        close(model(clip), model.head(torch.cat([sum(x) / 4, m], dim=1)))


def test_pooled_difference_is_blind_to_a_translating_sprite_map_difference_is_not():
    """A sprite that only moves (on a uniform background, away from the border) leaves the pooled vector
    almost unchanged, so dx_t ~ 0, while the map difference dX_t is large: why the default is "maps"."""
    model = build_model("hidden_two_stream", clip=tiny(4, 32), num_classes=3).eval()
    clip = torch.zeros(1, 4, 3, 32, 32)
    for t in range(4):
        clip[0, t, :, 8:14, 6 + 4 * t : 12 + 4 * t] = 1.0  # a 6x6 square moving 4 px right per frame
    with torch.no_grad():
        maps = model.backbone.per_frame_maps(clip)
        d_maps = TemporalDifference()(maps).abs().mean()
        d_pooled = TemporalDifference()(maps.mean(dim=(3, 4))).abs().mean()
    assert d_pooled < 0.1 * d_maps
