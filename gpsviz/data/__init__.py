"""Datasets as in-memory uint8 tensors: the procedural shapes world, real datasets and the user's own data.

Every loader returns an :class:`ImageDataset` (images uint8 N×C×H×W, labels int64 N, factors, masks).
"""
from gpsviz.data.core import ImageDataset
from gpsviz.data.loaders import available_datasets, load_dataset, load_splits
from gpsviz.data.local import from_arrays, from_folder
from gpsviz.data.shapes import SHAPE_CLASSES, make_shapes

__all__ = ["ImageDataset", "load_dataset", "load_splits", "available_datasets", "make_shapes", "from_arrays", "from_folder",
           "SHAPE_CLASSES"]
