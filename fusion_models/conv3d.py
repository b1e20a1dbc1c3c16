"""3D CNN references: R3D and R(2+1)D (Tran et al. 2018) at the shared backbone's width budget.

Rather than a second encoder, the shared 2D backbone is *converted* to 3D module by module, so ``r3d`` on
``small_cnn`` has the same 16/32/64/64 channels and spatial strides, on ``resnet18`` the same blocks:

    r3d:       Conv2d k x k, stride s  ->  Conv3d (3, k, k), stride (s_t, s, s), padding (1, p, p)
    r2plus1d:  Conv2d k x k, stride s  ->  Conv3d (1, k, k) to M channels -> BN -> ReLU -> Conv3d (3, 1, 1),
               M = floor(3 k^2 C_in C_out / (k^2 C_in + 3 C_out))  (same parameter count as the 3D conv)
    1x1 convs stay pointwise (1, 1, 1); BatchNorm2d -> BatchNorm3d; MaxPool2d k -> MaxPool3d (1, k, k);
    AdaptiveAvgPool2d(1) (squeeze-excitation) -> AdaptiveAvgPool3d(1).

    clip [B, T, C, H, W] --permute--> [B, C, T, H, W] --3D features--> [B, D, T', h, w]
        --mean over t, h, w--> [B, D] --g_phi--> z [B, K]

Time is downsampled (s_t = 2) wherever space is, except in the first conv (as in torchvision's r3d_18,
whose stem keeps time and whose layer2-4 halve it): T = 8 -> 8, 4, 2, 2 on ``small_cnn``. With
``pretrained=True`` (resnet18 / mobilenet ImageNet weights) ``r3d`` bootstraps every 3D kernel from the 2D
one divided by 3 (I3D inflation); random init draws every tap independently, since identical taps would make
a kernel symmetric in time.

``tv=True`` builds torchvision's own 18-layer ``r3d_18`` / ``r2plus1d_18`` (stem + layer1-4, ~33 M / 31 M
parameters, ~40 GMACs at 16 x 112 x 112) with our head instead: for users with a GPU. Not the default:
training it on the default run's CPU would take hours.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .backbone import Backbone, _require_cached
from .clip import ClipSpec
from .encoder import EncoderArgs
from .layers import ClassifierHead
from .registry import register_model

TEMPORAL_KERNEL = 3


def r2plus1d_mid_channels(c_in: int, c_out: int, k: int, t: int = TEMPORAL_KERNEL) -> int:
    """Tran et al.'s M: the (2+1)D pair ``k^2 C_in M + t M C_out`` has the 3D conv's ``t k^2 C_in C_out`` params."""
    return (t * k * k * c_in * c_out) // (k * k * c_in + t * c_out)


def _conv3d_from(conv: nn.Conv2d, *, kt: int, st: int, from_weights: bool) -> nn.Conv3d:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    new = nn.Conv3d(conv.in_channels, conv.out_channels, (kt, kh, kw), stride=(st, sh, sw), padding=(kt // 2, ph, pw),
                    dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None)
    if from_weights:  # I3D: a static clip gives the 2D response
        with torch.no_grad():
            new.weight.copy_(conv.weight.detach().unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt)
            if conv.bias is not None:
                new.bias.copy_(conv.bias.detach())
    return new


def _conv2plus1d_from(conv: nn.Conv2d, *, kt: int, st: int) -> nn.Sequential:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    c_in, c_out, g = conv.in_channels, conv.out_channels, conv.groups
    if g == 1:
        mid = r2plus1d_mid_channels(c_in, c_out, kh, kt)
    elif g == c_in == c_out:  # depthwise stays depthwise in both factors
        mid = c_out
    else:
        raise ValueError(f"r2plus1d: cannot factorise a grouped conv with groups={g}, {c_in}->{c_out}")
    return nn.Sequential(
        nn.Conv3d(c_in, mid, (1, kh, kw), stride=(1, sh, sw), padding=(0, ph, pw), dilation=(1, *conv.dilation),
                  groups=g, bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, c_out, (kt, 1, 1), stride=(st, 1, 1), padding=(kt // 2, 0, 0), groups=g,
                  bias=conv.bias is not None),
    )


def convert_to_3d(features: nn.Module, *, factorized: bool, from_weights: bool = False) -> nn.Module:
    """A 3D copy of a 2D encoder (``[N, C, H, W]`` modules -> ``[N, C, T, H, W]`` modules); see module docstring.

    Containers (``Sequential``, torchvision's ``BasicBlock`` / ``InvertedResidual`` / ``SqueezeExcitation``) are
    kept: their forward is layout-agnostic. Any other 2D-only leaf raises ``TypeError``.
    """
    if factorized and from_weights:
        raise ValueError("r2plus1d: 2D weights do not determine a (2+1)D factorisation; use pretrained=False")
    features = copy.deepcopy(features)
    convs = [n for n, m in features.named_modules() if isinstance(m, nn.Conv2d)]
    first = convs[0] if convs else None
    for name, module in list(features.named_modules()):
        new: nn.Module | None = None
        if isinstance(module, nn.Conv2d):
            spatial = module.kernel_size != (1, 1)
            st = 2 if (module.stride[0] == 2 and name != first) else 1
            kt = TEMPORAL_KERNEL if spatial else 1
            if factorized and spatial:
                new = _conv2plus1d_from(module, kt=kt, st=st)
            else:
                new = _conv3d_from(module, kt=kt, st=st, from_weights=from_weights)
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.BatchNorm3d(module.num_features, eps=module.eps, momentum=module.momentum)
            new.load_state_dict(module.state_dict())
        elif isinstance(module, nn.MaxPool2d):
            k, s, p = (nn.modules.utils._pair(v) for v in (module.kernel_size, module.stride, module.padding))
            new = nn.MaxPool3d((1, *k), (1, *s), (0, *p), ceil_mode=module.ceil_mode)
        elif isinstance(module, nn.AvgPool2d):  # timm's avg-pool downsample shortcuts
            k, s, p = (nn.modules.utils._pair(v) for v in (module.kernel_size, module.stride, module.padding))
            # a spatial stride 2 also halves time (temporal kernel 1, stride 2), as the stride-2 conv on the
            # residual branch does: both give ceil(T/2) steps, with or without ceil_mode
            st = 2 if s[0] == 2 else 1
            new = nn.AvgPool3d((1, *k), (st, *s), (0, *p), ceil_mode=module.ceil_mode,
                               count_include_pad=module.count_include_pad, divisor_override=module.divisor_override)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            if nn.modules.utils._pair(module.output_size) != (1, 1):
                raise TypeError(f"convert_to_3d: AdaptiveAvgPool2d({module.output_size}) at {name!r} is not global")
            new = nn.AdaptiveAvgPool3d(1)
        elif "2d" in type(module).__name__.lower() and not list(module.children()):  # a 2D-only leaf
            raise TypeError(f"convert_to_3d: no 3D counterpart for {type(module).__name__} at {name!r}")
        if new is not None:
            parent_path, _, leaf = name.rpartition(".")
            setattr(features.get_submodule(parent_path) if parent_path else features, leaf, new)
    return features


def _torchvision_video(name: str, pretrained: bool) -> nn.Sequential:
    import torchvision.models.video as tvv

    weights = None
    if pretrained:
        weights = {"r3d_18": tvv.R3D_18_Weights, "r2plus1d_18": tvv.R2Plus1D_18_Weights}[name].KINETICS400_V1
        _require_cached(weights)
    m = getattr(tvv, name)(weights=weights)
    return nn.Sequential(m.stem, m.layer1, m.layer2, m.layer3, m.layer4)


class Conv3DNet(nn.Module):
    """``[B, T, C, H, W] -> [B, C, T, H, W] -> 3D features -> global mean -> head``."""

    def __init__(self, features: nn.Module, head: ClassifierHead, *, name: str, channels: int = 3) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.name = name
        self.channels = channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, K]``."""
        maps = self.features(clip.transpose(1, 2))  # [B, D, T', h, w]
        return self.head(maps.mean(dim=(2, 3, 4)))


def _conv3d_model(name: str, *, factorized: bool, clip: ClipSpec, num_classes: int, tv: bool,
                  encoder: dict) -> Conv3DNet:
    e = EncoderArgs.of(name, **encoder)
    if tv:
        if e.backbone not in ("small_cnn", "resnet18") or e.width != 16:
            raise ValueError(f"{name}(tv=True) is torchvision's fixed 18-layer net; drop backbone={e.backbone!r}/width={e.width}")
        if clip.channels != 3:
            raise ValueError(f"{name}(tv=True) takes RGB clips, got ClipSpec.channels={clip.channels}")
        features, dim = _torchvision_video("r2plus1d_18" if factorized else "r3d_18", e.pretrained), 512
    else:
        if factorized and e.pretrained:
            raise ValueError(f"{name}: 2D weights do not determine a (2+1)D factorisation; use pretrained=False or tv=True")
        enc: Backbone = e.build(clip.channels)
        features, dim = convert_to_3d(enc.features, factorized=factorized, from_weights=e.pretrained), enc.out_channels
    return Conv3DNet(features, e.head(dim, num_classes), name=name, channels=clip.channels)


# name, factorised, reference, docstring: the two 3D nets differ only in how a k x k conv is converted.
CONV3D = (
    ("r3d", False, "Tran et al. 2018, A Closer Look at Spatiotemporal Convolutions for Action Recognition (CVPR), R3D",
     "The shared backbone as a 3D CNN: every k x k conv becomes 3 x k x k (``tv=True``: torchvision r3d_18)."),
    ("r2plus1d", True,
     "Tran et al. 2018, A Closer Look at Spatiotemporal Convolutions for Action Recognition (CVPR), R(2+1)D",
     "The shared backbone with every k x k conv factorised into 1 x k x k then 3 x 1 x 1 (``tv=True``: r2plus1d_18)."),
)


def _conv3d_builder(name: str, factorized: bool, doc: str):
    def builder(*, clip: ClipSpec, num_classes: int, tv: bool = False, **encoder) -> Conv3DNet:
        return _conv3d_model(name, factorized=factorized, clip=clip, num_classes=num_classes, tv=tv, encoder=encoder)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return builder


for _name, _factorized, _reference, _doc in CONV3D:
    register_model(name=_name, family="order_aware", fusion_point="feature_map", order_aware=True,
                   reference=_reference, min_frames=2)(_conv3d_builder(_name, _factorized, _doc))
