"""Training and evaluation data: clip listing/reading, sample datasets, evaluation pairs, augmentation."""

from dagan.data.augmentation import (
    AugmentParams,
    ClipAugmentation,
    JitterParams,
    color_jitter,
    depth_augmentation,
    pair_augmentation,
)
from dagan.data.datasets import Clip, ClipReader, FrameSequenceDataset, PairDataset, list_clips, sample_rng
from dagan.data.pairs import EvaluationPairs, FramePair, make_pairs

__all__ = [
    "AugmentParams",
    "Clip",
    "ClipAugmentation",
    "ClipReader",
    "EvaluationPairs",
    "FramePair",
    "FrameSequenceDataset",
    "JitterParams",
    "PairDataset",
    "color_jitter",
    "depth_augmentation",
    "list_clips",
    "make_pairs",
    "pair_augmentation",
    "sample_rng",
]
