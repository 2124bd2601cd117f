"""Training: config, the loop, checkpoints and run directories."""

from .config import TrainConfig
from ..errors import TrainingError
from .loop import Run, evaluate, train

__all__ = ["Run", "TrainConfig", "TrainingError", "evaluate", "train"]
