"""Training: one candidate adapter from a base model, a data file and a TrainConfig."""

from harness.train.adapter import TrainingFailed, preflight, train

__all__ = ["TrainingFailed", "preflight", "train"]
