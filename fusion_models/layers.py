"""Building blocks shared by the fusion models: the classifier head, temporal aggregators, fusion ops.

Every aggregator / fusion op exposes ``output_dim`` so the next layer is sized without guessing.
This module never imports a model module (layers -> models, never the reverse).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOL_MODES = ("avg", "max", "attn")


class ClassifierHead(nn.Module):
    """THE classifier g_phi every model uses: ``x [B, D] --Dropout(p)--> Linear(D, K) --> z [B, K]``.

    Works on any leading shape (``[B, T, D] -> [B, T, K]``), which late fusion uses for per-frame logits.
    """

    def __init__(self, in_dim: int, num_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, num_classes)
        self.output_dim = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., K]``."""
        return self.fc(self.dropout(x))


class TemporalPool(nn.Module):
    """Feature-level temporal pooling (notes §4): ``x_t [B, T, D] --pool over t--> x [B, D]``.

    - ``avg``:  ``x = 1/T sum_t x_t``
    - ``max``:  ``x_i = max_t (x_t)_i``
    - ``attn``: ``s_t = w^T x_t`` (Linear D->1, no bias), ``alpha = softmax_t(s)``, ``x = sum_t alpha_t x_t``

    All three are symmetric functions of the frames, so the result does not depend on frame order.
    """

    def __init__(self, dim: int, mode: str = "avg") -> None:
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"TemporalPool mode must be one of {POOL_MODES}, got {mode!r}")
        self.mode = mode
        self.output_dim = dim
        # Bias-free: a bias adds the same constant to every s_t and cancels in the softmax.
        self.score = nn.Linear(dim, 1, bias=False) if mode == "attn" else None

    def forward(
        self, x: torch.Tensor, *, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D] -> [B, D]``; with ``return_weights`` also the frame weights ``[B, T]`` (each row sums
        to 1): ``alpha`` for attn, ``1/T`` for avg, for max the share of the D features each frame supplied."""
        if self.mode == "avg":
            out = x.mean(dim=1)
            weights = torch.full(x.shape[:2], 1.0 / x.shape[1], dtype=x.dtype, device=x.device)
        elif self.mode == "max":
            out, idx = x.max(dim=1)  # idx [B, D]: the frame that supplied each feature
            weights = F.one_hot(idx, x.shape[1]).to(x.dtype).mean(dim=1)
        else:
            s = self.score(x).squeeze(-1)  # s_t = w^T x_t            [B, T]
            weights = torch.softmax(s, dim=1)  # alpha_t                [B, T]
            out = (weights.unsqueeze(-1) * x).sum(dim=1)  # sum_t alpha_t x_t  [B, D]
        return (out, weights) if return_weights else out


class LSTMAggregator(nn.Module):
    """Standard LSTM over per-frame features (notes §6, the six equations): ``x_t [B, T, D] -> h_T [B, H]``.

    Kept as ``nn.LSTM`` (cuDNN / fused CPU kernel); PyTorch's gate order in ``weight_ih_l0`` is i, f, g, o
    with ``g`` the notes' ``c~``. ``tests/fusion_models/test_equations.py`` recomputes the equations by hand.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.output_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, H]`` (the last hidden state)."""
        _, (h, _) = self.lstm(x)
        return h[-1]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (notes §6) with the four gates computed by ONE fused convolution:

        concat[X_t, H_{t-1}]  [B, C_x + C_h, h, w]
            --conv k x k (pad k//2)--> [B, 4 C_h, h, w] --chunk--> I, F, O, C~ pre-activations
        I_t = sigma(.)  F_t = sigma(.)  O_t = sigma(.)  C~_t = tanh(.)
        C_t = F_t * C_{t-1} + I_t * C~_t        H_t = O_t * tanh(C_t)

    The fused weight ``[4 C_h, C_x + C_h, k, k]`` is ``[W_x* | W_h*]`` stacked over gates in the order
    ``GATES``; a conv of a concatenation is the sum of the two convs, so this equals the notes' form.
    """

    GATES = ("I", "F", "O", "C")

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.output_dim = hidden_channels

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``X_t [B, C_x, h, w]``, ``(H_{t-1}, C_{t-1}) [B, C_h, h, w]`` -> ``(H_t, C_t)``."""
        h_prev, c_prev = state
        i, f, o, g = self.conv(torch.cat([x, h_prev], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """ConvLSTM over a sequence of maps: ``X [B, T, C_x, h, w] -> H_T [B, C_h, h, w]`` (H_0 = C_0 = 0)."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(in_channels, hidden_channels, kernel_size)
        self.output_dim = hidden_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C_x, h, w] -> [B, C_h, h, w]``."""
        b, _, _, hh, ww = x.shape
        h = x.new_zeros(b, self.cell.hidden_channels, hh, ww)
        c = torch.zeros_like(h)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return h


class TemporalDifference(nn.Module):
    """Motion-like latent of the hidden two-stream (notes §9): ``x [B, T, ...] -> dx [B, T-1, ...]``,
    ``dx_t = x_t - x_{t-1}``. Works on pooled vectors ``[B, T, D]`` and on maps ``[B, T, D, h, w]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, ...] -> [B, T-1, ...]``."""
        if x.shape[1] < 2:
            raise ValueError(f"TemporalDifference needs at least 2 frames, got T={x.shape[1]}")
        return x[:, 1:] - x[:, :-1]


class ConvFusion(nn.Module):
    """Convolutional two-stream fusion (notes §8):

        Fs [B, c_s, h, w], Ft [B, c_t, h, w] --concat--> F [B, c_s + c_t, h, w] --W_1x1 *--> F_mix [B, D, h, w]
    """

    def __init__(self, spatial_channels: int, temporal_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or spatial_channels
        self.mix = nn.Conv2d(spatial_channels + temporal_channels, out_channels, kernel_size=1)
        self.output_dim = out_channels

    def forward(self, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        """``[B, c_s, h, w], [B, c_t, h, w] -> [B, D, h, w]``."""
        return self.mix(torch.cat([fs, ft], dim=1))


class GatedFusion(nn.Module):
    """Gated two-stream fusion (notes §8):

        [Fs, Ft] [B, 2D, h, w] --Conv k x k--> sigma --> G [B, D, h, w]
        F = G * Fs + (1 - G) * Ft                          [B, D, h, w]

    Default ``kernel_size=1``: the gate then sees exactly what ``ConvFusion``'s 1x1 mix sees (one
    position of both streams), so two_stream_conv vs two_stream_gated differ only in *how* the streams are
    combined, not in receptive field; it is also 9x cheaper than a 3x3 gate. Both streams must have D
    channels (the convex combination is per channel).
    """

    def __init__(self, channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.gate = nn.Conv2d(2 * channels, channels, kernel_size, padding=kernel_size // 2)
        self.output_dim = channels

    def forward(
        self, fs: torch.Tensor, ft: torch.Tensor, *, return_gate: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[B, D, h, w], [B, D, h, w] -> F [B, D, h, w]`` (and ``G`` with ``return_gate``)."""
        g = torch.sigmoid(self.gate(torch.cat([fs, ft], dim=1)))
        out = g * fs + (1 - g) * ft
        return (out, g) if return_gate else out
