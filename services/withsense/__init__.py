"""With Sense search: text-to-image search with calibrated match probabilities."""

from withsense.offline import set_offline_defaults

__version__ = "0.1.0"

set_offline_defaults()  # before any model package is imported
