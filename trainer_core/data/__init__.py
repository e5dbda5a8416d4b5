"""trainer_core.data: annotations, splits, synthetic data, augmentation, DB targets, dataset."""

from trainer_core.data.annotations import Sample, read_icdar, read_samples, read_ufo
from trainer_core.data.dataset import DetectionDataset, load_image, seed_worker
from trainer_core.data.splits import Splits, make_splits, sample_name, split_samples
from trainer_core.data.synthetic import generate
from trainer_core.data.targets import db_targets, shrink_distance
from trainer_core.data.transforms import Transformed, eval_transform, train_transform

__all__ = [
    "DetectionDataset",
    "Sample",
    "Splits",
    "Transformed",
    "db_targets",
    "eval_transform",
    "generate",
    "load_image",
    "make_splits",
    "read_icdar",
    "read_samples",
    "read_ufo",
    "sample_name",
    "seed_worker",
    "shrink_distance",
    "split_samples",
    "train_transform",
]
