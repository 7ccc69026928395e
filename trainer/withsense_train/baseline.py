"""A re-creation of the customer's first approach, evaluated by the same metrics.

The customer concatenated an image vector and a text vector and trained a regressor to predict
how well the pair matches (the expert mean score). Here: the image tower's pooled features and
the MiniLM text embedding, standardised, into scikit-learn's ``MLPRegressor`` predicting the
graded target ``(expert mean - 1) / 3`` of the training photos' expert pairs; its prediction,
clipped to 0..1, is the match "probability"; retrieval ranks photos by the raw prediction.
"""

from __future__ import annotations

import numpy as np


class FirstApproach:
    name = "customer's first approach (concat + MLP regressor)"

    def __init__(self, seed: int = 0, hidden: int = 256) -> None:
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=(hidden,), alpha=1e-2, early_stopping=True,
                         max_iter=300, random_state=seed),
        )
        self.fitted = False

    def fit(self, pooled: np.ndarray, text: np.ndarray, target: np.ndarray) -> FirstApproach:
        self.model.fit(np.concatenate([pooled, text], axis=1), target)
        self.fitted = True
        return self

    def predict(self, pooled: np.ndarray, text: np.ndarray) -> np.ndarray:
        """Raw predictions of pairs (row i of pooled with row i of text)."""
        return self.model.predict(np.concatenate([pooled, text], axis=1))

    def probability(self, pooled: np.ndarray, text: np.ndarray) -> np.ndarray:
        return np.clip(self.predict(pooled, text), 0.0, 1.0)

    def score_matrix(self, text: np.ndarray, pooled: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """[Q, G] raw predictions of every query with every photo."""
        n_queries, n_photos = len(text), len(pooled)
        out = np.empty((n_queries, n_photos), dtype=np.float64)
        per = max(1, chunk // max(1, n_photos))
        for start in range(0, n_queries, per):
            stop = min(n_queries, start + per)
            rows = np.repeat(text[start:stop], n_photos, axis=0)
            cols = np.tile(pooled, (stop - start, 1))
            out[start:stop] = self.predict(cols, rows).reshape(stop - start, n_photos)
        return out
