"""Datasets: standard files read safely, found or fetched without fuss, batched on the device."""

from .batcher import Augment, Batcher, default_augment
from .registry import SOURCES, Dataset, fetch, find, load, verify

__all__ = ["Augment", "Batcher", "Dataset", "SOURCES", "default_augment", "fetch", "find", "load", "verify"]
