"""Training: one candidate adapter from a base model, a data file and a TrainConfig."""

from harness.train.adapter import TRAIN_RECORD, TrainingFailed, preflight, train

__all__ = ["TRAIN_RECORD", "TrainingFailed", "preflight", "train"]
