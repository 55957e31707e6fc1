"""A revealed model as a scikit-learn pipeline on raw rows: the model's features (one-hot
columns, expressions) computed from the rows' columns, in the model's order."""

import numpy as np
import pandas as pd
import pytest

from twofold.models import feature_matrix, predict, to_sklearn

MODEL = {"model": "logistic", "intercept": -0.5,
         "features": ["customers.age", "customers.region == 'north'",
                      "customers.region == 'south'", "orders.amount * 2 > customers.age",
                      "not customers.region in ['east']"],
         "coefficients": {"customers.age": 0.02, "customers.region == 'north'": 0.4,
                          "customers.region == 'south'": -0.3,
                          "orders.amount * 2 > customers.age": 0.7,
                          "not customers.region in ['east']": 0.1}}
ROWS = pd.DataFrame({"customers.age": [45, 20, 70], "region": ["north", "south", "east"],
                     "orders.amount": [10.0, 50.0, 36.0]})
EXPANDED = np.array([[45, 1, 0, 0, 1], [20, 0, 1, 1, 1], [70, 0, 0, 1, 0]], dtype=float)


def test_features_from_raw_rows_in_the_models_order():
    assert np.array_equal(feature_matrix(MODEL, ROWS), EXPANDED)


def test_the_pipeline_predicts_from_raw_rows_as_the_model_does():
    pipeline = to_sklearn(MODEL, raw=True)
    assert np.array_equal(pipeline.predict(ROWS), predict(MODEL, EXPANDED))
    assert np.array_equal(to_sklearn(MODEL).predict(EXPANDED), predict(MODEL, EXPANDED))


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match="no column orders.amount"):
        feature_matrix(MODEL, ROWS.drop(columns="orders.amount"))
