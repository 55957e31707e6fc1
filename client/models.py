"""A revealed model where analysts work: its predictions in numpy, and a fitted scikit-learn
estimator with the same predictions (built from the JSON, never unpickled)."""

from __future__ import annotations

import numpy as np


def decision(model: dict, x) -> np.ndarray:
    """intercept + x @ coefficients, for rows x of raw feature values in the model's order."""
    coefficients = np.array([model["coefficients"][name] for name in model["features"]])
    return np.asarray(x, dtype=np.float64) @ coefficients + model["intercept"]


def predict(model: dict, x) -> np.ndarray:
    """Linear: the predicted value. Logistic: the predicted class (0 or 1)."""
    u = decision(model, x)
    return u if model["model"] == "linear" else (u >= 0).astype(np.int64)


def predict_probability(model: dict, x) -> np.ndarray:
    """Logistic: the probability of class 1 as training computed it, clamp(u / 4 + 1/2)."""
    return np.clip(decision(model, x) / 4 + 0.5, 0.0, 1.0)


def to_sklearn(model: dict):
    """A fitted LinearRegression or LogisticRegression whose predict() equals predict() above
    (coef_, intercept_ and, for logistic, classes_ set). Its predict_proba uses the exact
    sigmoid, not training's approximation; the predicted classes are the same."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    if not model.get("released", True):
        raise ValueError("this model was withheld: its join did not reach min_join_size")
    coefficients = np.array([model["coefficients"][name] for name in model["features"]])
    if model["model"] == "linear":
        estimator = LinearRegression()
        estimator.coef_, estimator.intercept_ = coefficients, float(model["intercept"])
    else:
        estimator = LogisticRegression()
        estimator.coef_ = coefficients[None, :]
        estimator.intercept_ = np.array([float(model["intercept"])])
        estimator.classes_ = np.array([0, 1])
    estimator.n_features_in_ = len(coefficients)
    return estimator
