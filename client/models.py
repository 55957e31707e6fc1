"""A revealed model where analysts work: its predictions in numpy, and a fitted scikit-learn
estimator with the same predictions (built from the JSON, never unpickled), on feature values
in the model's order or on raw rows (its features computed from their columns)."""

from __future__ import annotations

import ast
import operator
from functools import partial

import numpy as np
import pandas as pd

OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv, ast.Eq: operator.eq, ast.NotEq: operator.ne,
             ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
             ast.GtE: operator.ge}


def feature_matrix(model: dict, rows) -> np.ndarray:
    """The model's features, in its order, from raw rows (a DataFrame, or a dict of columns,
    named table.column or column): a one-hot feature from its categorical column, every
    expression evaluated on the rows' values (sorting_join/predicate.py's syntax)."""
    frame = pd.DataFrame(rows)
    columns = [np.broadcast_to(np.asarray(_value(ast.parse(text, mode="eval").body, frame),
                                          dtype=np.float64), (len(frame),))
               for text in model["features"]]
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0))


def _value(node: ast.expr, frame: pd.DataFrame):
    match node:
        case ast.Attribute(value=ast.Name(id=table), attr=column):
            for name in (f"{table}.{column}", column):
                if name in frame:
                    return frame[name].to_numpy()
            raise ValueError(f"the rows have no column {table}.{column} (nor {column})")
        case ast.Constant(value=value):
            return value
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return np.logical_not(_value(operand, frame))
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_value(operand, frame)
        case ast.BoolOp(op=op, values=values):
            combine = np.logical_and if isinstance(op, ast.And) else np.logical_or
            return combine.reduce([_value(value, frame) for value in values])
        case ast.BinOp(left=left, op=op, right=right):
            return OPERATORS[type(op)](_value(left, frame), _value(right, frame))
        case ast.Compare(left=left, ops=[ast.In() | ast.NotIn() as op],
                         comparators=[ast.List(elts=items) | ast.Tuple(elts=items)]):
            found = np.isin(_value(left, frame), [_value(item, frame) for item in items])
            return found if isinstance(op, ast.In) else np.logical_not(found)
        case ast.Compare(left=left, ops=[op], comparators=[right]):
            return OPERATORS[type(op)](_value(left, frame), _value(right, frame))
    raise ValueError(f"cannot compute {ast.unparse(node)}")


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


def to_sklearn(model: dict, raw: bool = False):
    """A fitted LinearRegression or LogisticRegression whose predict() equals predict() above
    (coef_, intercept_ and, for logistic, classes_ set). Its predict_proba uses the exact
    sigmoid, not training's approximation; the predicted classes are the same. With raw, a
    pipeline that takes raw rows (feature_matrix) and then the estimator."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

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
    if raw:
        return make_pipeline(FunctionTransformer(partial(feature_matrix, model)), estimator)
    return estimator
