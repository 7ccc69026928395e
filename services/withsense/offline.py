"""The models ship inside pip packages: never reach out to a model hub, and keep the tokenizers'
own thread pool out of the way of ours."""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def set_offline_defaults() -> None:
    """Sets these variables unless the environment already has them."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
