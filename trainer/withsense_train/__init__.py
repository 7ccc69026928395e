"""The With Sense trainer: loads the customer's data set, filters it legally, trains the heads of
the fused image-text model over frozen, cached tower features, calibrates them, evaluates them
against the zero-shot model and the customer's first approach, and exports the model artifact.

Modules:

- ``data``: loader and validator of the customer's format (``DatasetError`` names file and line).
- ``synthetic``: small drawn data sets in the same format, for tests (``python -m
  withsense_train.synthetic OUT --images N``).
- ``filtering``: the legal filter (``withsense.compliance``): drops pairs with a flagged photo or a
  text that mentions a child, and says how many and why.
- ``features``: tower features, cached on disk by tower weight hash and file/text hash.
- ``train``: ``train(data_dir, out_dir, config) -> TrainResult``.
- ``calibration``: logistic fit of "experts say match" on the cosine -> the model's t and b.
- ``metrics``, ``baseline``, ``evaluate``: Recall@K, MRR, ROC-AUC, Kendall tau-c, ECE, RMSE; the
  customer's first approach re-created; K-fold by photo.
- ``cli``: the hooks behind ``withsense train`` and ``withsense evaluate``.
"""

__all__: list[str] = []
