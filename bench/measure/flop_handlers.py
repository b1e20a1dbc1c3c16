"""Extra MAC formulas so nothing our models (or torchvision's) run is silently counted as 0.

Convention here: every fvcore handle returns **MACs** (one multiply-add = 1, fvcore's unit); every torch
formula returns **FLOPs = 2 x MACs** (``FlopCounterMode``'s unit). Only matmul-like work is counted: the
gate matmuls of recurrent layers and the two batched matmuls of attention. Elementwise ops (gates'
sigmoid/tanh, the cell update, softmax, norms, pools) count 0 by policy -- see ``POLICY_ZERO`` and
``docs/measure.md``.

Recurrent layers: per step, per layer, per direction an LSTM does ``x W_ih^T`` ([4H, I]) and
``h W_hh^T`` ([4H, P]) (+ ``h W_hr^T`` with a projection), a GRU the same with 3H, a vanilla RNN with H.
So for every recurrent op: ``MACs = steps x batch x sum(numel of every 2-D weight)``, biases are adds.
"""
from __future__ import annotations

from math import prod
from typing import Any, Sequence

import torch

aten = torch.ops.aten

# ----------------------------------------------------------------------------------------- fvcore (JIT)


def _jit_shape(val: Any) -> list[int] | None:
    t = val.type()
    if isinstance(t, torch._C.TensorType):
        sizes = t.sizes()
        return list(sizes) if sizes is not None else None
    return None


def _jit_list_shapes(val: Any) -> list[list[int]]:
    """Shapes of the tensors in a traced ``prim::ListConstruct`` (e.g. an RNN's flat weights)."""
    node = val.node()
    if node.kind() != "prim::ListConstruct":
        return []
    return [s for s in (_jit_shape(v) for v in node.inputs()) if s is not None]


def rnn_macs_jit(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """``aten::lstm`` / ``aten::gru`` / ``aten::rnn_tanh`` / ``aten::rnn_relu`` (padded or packed) -> MACs.

    ``inputs[0]`` is ``[T, B, I]`` / ``[B, T, I]`` / packed ``[sum_T, I]``: ``prod(shape[:-1])`` is the number
    of (step, sequence) pairs either way. The 2-D tensors among the list arguments are the weights
    (the ``hx`` list holds 3-D ``[L*D, B, H]`` states and is skipped).
    """
    x = _jit_shape(inputs[0])
    if x is None:
        raise ValueError("rnn input has no static shape in the trace")
    weights = [s for v in inputs[1:] for s in _jit_list_shapes(v) if len(s) == 2]
    if not weights:
        raise ValueError("found no 2-D weights among the rnn op's list arguments")
    return prod(x[:-1]) * sum(prod(w) for w in weights)


def sdpa_macs_jit(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """``aten::scaled_dot_product_attention`` -> MACs of ``Q K^T`` and ``softmax(.) V``.

    q ``[..., Lq, E]``, k ``[..., Lk, E]``, v ``[..., Lk, Ev]``: ``prod(q[:-2]) * Lq * Lk * (E + Ev)``
    (query heads broadcast over grouped KV heads). Causal masking is not discounted (as torch).
    """
    q, k, v = (_jit_shape(i) for i in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError("sdpa inputs have no static shapes in the trace")
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def _jit_constant(val: Any) -> Any:
    """The value of a traced constant argument (a ``prim::ListConstruct`` of constants becomes a list)."""
    node = val.node()
    if node.kind() == "prim::ListConstruct":
        return [_jit_constant(v) for v in node.inputs()]
    value = val.toIValue()
    if value is None:
        raise ValueError(f"argument {val.debugName()} is not a constant in the trace")
    return value


def horn_schunck_macs_jit(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """``fusionbench::horn_schunck`` (the fused CPU flow) -> the convolution MACs the torch backend runs."""
    from fusion_models.flow import _horn_schunck_op_macs

    frames = _jit_shape(inputs[0])
    if frames is None:
        raise ValueError("horn_schunck frames have no static shape in the trace")
    clips, length, sizes, warps, iterations, _alpha2, pcg = (_jit_constant(v) for v in inputs[3:10])
    return _horn_schunck_op_macs(frames[0], clips, length, sizes, warps, iterations, pcg)


FVCORE_HANDLES = {
    "fusionbench::horn_schunck": horn_schunck_macs_jit,
    "aten::lstm": rnn_macs_jit,
    "aten::gru": rnn_macs_jit,
    "aten::rnn_tanh": rnn_macs_jit,
    "aten::rnn_relu": rnn_macs_jit,
    "aten::scaled_dot_product_attention": sdpa_macs_jit,
}

# fvcore counts these by default (norms ~1-2/element, pools, upsampling). They are elementwise work that
# torch's counter and torchvision's published ``_ops`` leave out; ignoring them makes ``gmacs`` the same
# quantity as ``gflops_torch / 2`` and as torchvision's ``meta["_ops"]`` (r3d_18: 40.697, not 40.739).
FVCORE_IGNORED = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)

# ------------------------------------------------------------------------------------ torch dispatch


def _rnn_list_flop(input_shape, *args, out_shape=None, **kwargs) -> int:
    """``aten.lstm``/``gru``/``rnn_*`` if they ever reach a dispatch mode (CPU decomposes them first)."""
    weights = [s for a in args if isinstance(a, (list, tuple)) for s in a if isinstance(s, (list, tuple, torch.Size)) and len(s) == 2]
    return 2 * prod(input_shape[:-1]) * sum(prod(w) for w in weights)


def _mkldnn_rnn_layer_flop(input_shape, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """CPU LSTM: one ``mkldnn_rnn_layer`` call per layer and direction; ``w_ih`` [4H, I], ``w_hh`` [4H, H]."""
    return 2 * prod(input_shape[:-1]) * (prod(w_ih) + prod(w_hh))


def _cudnn_rnn_flop(input_shape, weights, *args, out_shape=None, **kwargs) -> int:
    """CUDA cuDNN RNN: one call for all layers and directions; ``weights`` is the flat per-layer list."""
    return 2 * prod(input_shape[:-1]) * sum(prod(w) for w in weights if w is not None and len(w) == 2)


def _cpu_flash_sdpa_flop(q, k, v, *args, out_shape=None, **kwargs) -> int:
    """CPU fused attention (``_scaled_dot_product_flash_attention_for_cpu``): same formula as CUDA flash."""
    return 2 * prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def torch_custom_mapping() -> dict:
    """Formulas for ``FlopCounterMode(custom_mapping=...)`` (kept local: no global registry mutation)."""
    mapping = {
        aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flop,
        aten._cudnn_rnn: _cudnn_rnn_flop,
        aten.lstm: _rnn_list_flop,
        aten.gru: _rnn_list_flop,
        aten.rnn_tanh: _rnn_list_flop,
        aten.rnn_relu: _rnn_list_flop,
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_sdpa_flop,
    }
    return mapping


# --------------------------------------------------------------------------- what counting 0 is fine for

# Pure data movement / shape / creation: never work, never reported as "unsupported".
DATA_MOVEMENT = frozenset(
    """
    view reshape _unsafe_view _reshape_alias permute transpose t select slice unsqueeze squeeze expand
    expand_as as_strided alias detach clone copy_ copy contiguous cat stack unbind split split_with_sizes
    chunk unsafe_chunk unsafe_split unsafe_split_with_sizes flatten unflatten size numel dim zeros zeros_like ones ones_like empty empty_like
    empty_strided full full_like fill_ zero_ new_zeros new_empty new_full new_ones arange lift_fresh to
    _to_copy type_as index index_select gather scatter scatter_ masked_select pad constant_pad_nd
    reflection_pad2d replication_pad2d roll flip repeat tile unfold narrow item _local_scalar_dense
    Int ScalarImplicit Float Bool IntImplicit list tensor scalar_tensor dropout dropout_ feature_dropout
    native_dropout bernoulli bernoulli_ rand rand_like randn randn_like randint normal_ uniform_ linspace
    """.split()
)

# Work we deliberately count as 0 besides pointwise ops (recognised by ``torch.Tag.pointwise``):
# reductions (the inner products of Horn–Schunck's CG steps among them), norms, pools, softmax, resampling.
# Elementwise-class work, cheap next to the matmuls.
ELEMENTWISE_LIKE = frozenset(
    """
    sum mean amax amin aminmax max min argmax argmin std var var_mean prod norm linalg_vector_norm cumsum
    logsumexp all any linalg_vecdot vdot dot
    batch_norm native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional layer_norm native_layer_norm group_norm native_group_norm
    instance_norm softmax _softmax log_softmax _log_softmax _safe_softmax
    max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices avg_pool1d avg_pool2d
    avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d _adaptive_avg_pool2d
    _adaptive_avg_pool3d adaptive_max_pool2d adaptive_max_pool3d upsample_nearest2d upsample_bilinear2d
    upsample_trilinear3d upsample_nearest3d _upsample_bilinear2d_aa grid_sampler grid_sampler_2d
    grid_sampler_3d affine_grid_generator im2col col2im hardtanh hardtanh_ relu6
    """.split()
)

POLICY_ZERO = DATA_MOVEMENT | ELEMENTWISE_LIKE


def _base_name(op: str) -> str:
    """``"aten::relu_"`` / ``"aten.relu_.default"`` / ``"relu_"`` -> ``"relu_"``."""
    name = op.split("::", 1)[-1]
    if name.startswith("aten."):
        name = name[5:]
    return name.split(".", 1)[0]


def is_data_movement(op: str) -> bool:
    """True for shape/view/copy/creation ops: zero work, not worth listing as uncounted."""
    name = _base_name(op)
    return name in DATA_MOVEMENT or name.rstrip("_") in DATA_MOVEMENT


def is_policy_zero(op: str) -> bool:
    """True when counting ``op`` as 0 MACs is our documented policy (pointwise, data movement, norms...)."""
    name = _base_name(op)
    if name in POLICY_ZERO or name.rstrip("_") in POLICY_ZERO:
        return True
    packet = getattr(aten, name, None)
    if packet is None:
        return False
    try:
        return any(torch.Tag.pointwise in getattr(packet, o).tags for o in packet.overloads())
    except Exception:  # an odd packet without tags: not explained
        return False
