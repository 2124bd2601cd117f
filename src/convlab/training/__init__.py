"""Training: config, the loop, checkpoints and run directories."""

from .config import TrainConfig
from .loop import Run, TrainingError, evaluate, train

__all__ = ["Run", "TrainConfig", "TrainingError", "evaluate", "train"]
