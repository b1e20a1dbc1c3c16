"""Clip loaders: the synthetic motion tasks (known ceilings) and real video datasets, one sampler.

    DatasetSpec + ClipSpec + split + seed --build_dataset--> ds[i] = (clip [T, C, H, W], label)
                                          --make_loader-->   (clips [B, T, C, H, W], labels [B])
"""
from .ceilings import CEILINGS, FAMILIES, ceiling_for
from .decode import resolve_decoder, torchcodec_error
from .loader import BatchView, EpochBatchSampler, build_dataset, make_loader
from .spec import DATASETS, DatasetSpec
from .stopping import SplitView, carve_stopping_split, stopping_indices
from .user import register_dataset, user_datasets
from .synthetic import DIRECTIONS, ORDERS, SHAPES, ClipParams, SyntheticClips
from .video import NoUsableVideos, VideoClips

__all__ = [
    "CEILINGS", "FAMILIES", "ceiling_for", "resolve_decoder", "torchcodec_error", "BatchView", "EpochBatchSampler",
    "build_dataset", "make_loader", "register_dataset", "user_datasets", "DATASETS", "DatasetSpec", "DIRECTIONS",
    "ORDERS", "SHAPES", "ClipParams", "SyntheticClips", "NoUsableVideos", "VideoClips", "SplitView",
    "carve_stopping_split", "stopping_indices",
]
