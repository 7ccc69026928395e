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
- ``config``: ``TrainConfig`` and the choices of its fields (torch-free).
- ``prepare``: a data set's filter, features and split by photo; a model's vectors of them.
- ``fit``: ``fit_heads`` (the heads' start, the SigLIP epochs, early stopping).
- ``calibration``: logistic fit of "experts say match" on the cosine -> the model's t and b.
- ``metrics``, ``baseline``, ``evaluate``: Recall@K, MRR, ROC-AUC, Kendall tau-c, ECE, RMSE; the
  customer's first approach re-created; K-fold by photo.
- ``run``: ``TrainRun``, the state a training run's stages share (how to add a component).
- ``train``: ``train(data_dir, out_dir, config) -> TrainResult``, the stages in order.
- ``semantic``: the semantic child-query threshold (a stage of ``train``).
- ``cli``: the hooks behind ``withsense train`` and ``withsense evaluate``.

Imports run one way: config -> prepare -> fit, calibration -> evaluate -> run -> train -> cli.
"""

__all__: list[str] = []
