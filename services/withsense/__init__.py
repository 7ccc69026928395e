"""With Sense search: text-to-image search with calibrated match probabilities."""

__version__ = "0.1.0"
