"""Process environment: where the harness keeps its cache, and offline mode.

Must run before transformers / datasets / huggingface_hub are imported: they read these variables
at import time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HUB_HOST = ("huggingface.co", 443)


def harness_home() -> Path:
    home = Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def hub_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def configure() -> None:
    """Point every cache into HARNESS_HOME and go offline when the hub can't be reached.

    A firewall that drops packets makes hub look-ups hang for minutes, so we decide once, up front.
    Variables the user set explicitly are respected.
    """
    home = harness_home()
    os.environ.setdefault("HF_HOME", str(home / "hf"))
    os.environ.setdefault("LM_HARNESS_CACHE_PATH", str(home / "lm_eval_cache"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "HF_HUB_OFFLINE" not in os.environ and not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
