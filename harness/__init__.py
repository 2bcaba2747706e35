"""harness: evaluation and model selection for LoRA fine-tuning."""

__version__ = "0.1.0"
