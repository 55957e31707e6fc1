"""BigQuery ML's statements as Twofold's training and prediction jobs (docs/sql.md):

    CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['big'],
                            max_iterations = 200, learn_rate = 0.5, batch_size = 2,
                            privacy_level = 3)
    AS SELECT customers.age, customers.region, orders.amount >= 50 AS big
    FROM orders JOIN customers ON orders.customer = customers.id

is the training job `m` ([train]; a categorical column is one-hot encoded, as BigQuery does);
`SELECT * FROM ML.PREDICT(MODEL m, (SELECT ... FROM ... WHERE ...))` and ML.EVALUATE are
[predict] jobs on the rows of the inner query, with the model's own features (and, to
evaluate, its label): the inner query's other columns are returned beside the predictions.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from twofold.owners.schema import Schema
from twofold.servers.sql_scope import (
    Scope,
    Translation,
    canonical,
    check_clauses,
    job_section,
    output_name,
)
from twofold.servers.sql_syntax import Evaluate, SqlError, refuse, unsupported

MODEL_TYPES = {"logistic_reg": "logistic", "linear_reg": "linear"}
# OPTIONS, by their BigQuery ML names where BigQuery has them, as [train] keys
TRAIN_OPTIONS = {"max_iterations": "iterations", "learn_rate": "learning_rate",
                 "batch_size": "batch_size", "privacy_level": "privacy_level",
                 "min_join_size": "min_join_size", "epsilon": "epsilon", "delta": "delta",
                 "tau": "tau", "unit": "unit", "size_check_epsilon": "size_check_epsilon",
                 "residual_bound": "residual_bound"}
REQUIRED = ("model_type", "max_iterations", "learn_rate", "batch_size", "privacy_level")
ONE_SELECT = ("expressions", "from", "from_", "joins", "where")

# a model's description (ml.model.ModelDescription.as_dict) by the name of its training job
ModelLookup = Callable[[str], dict]


def model_name(node: exp.Expr) -> str:
    """A model as jobs name it: its training job's id, or submitter/id (`carol.m`)."""
    if not isinstance(node, exp.Table) or node.args.get("catalog"):
        refuse(node, "name a model as m, or submitter.m")
    return f"{node.db}/{node.name}" if node.db else node.name


def create_model(statement: exp.Create, schema: Schema, job: dict) -> Translation:
    if str(statement.args.get("kind") or "").upper() != "MODEL":
        unsupported(statement)
    if statement.args.get("replace") or statement.args.get("exists"):
        refuse(statement, "CREATE OR REPLACE and IF NOT EXISTS are not supported: a model is "
                          "a training job, and its name a job id")
    name = model_name(statement.this)
    if "/" in name:
        refuse(statement.this, "CREATE MODEL names your own model: m, without a submitter")
    select = statement.expression
    if not isinstance(select, exp.Select):
        refuse(statement, "CREATE MODEL needs AS SELECT <features>, <label> FROM ...")
    given = _options(statement)
    labels = given.pop("input_label_cols", ["label"])
    model_type = given.pop("model_type")
    check_clauses(select, ONE_SELECT)
    scope = Scope.of(schema, select)
    job = job_section(scope, select, job)
    features, label = [], None
    for node in select.expressions:
        if output_name(node) == labels[0]:
            label = scope.expression(node.unalias())
        else:
            features.append(_feature(scope, node.unalias()))
    if label is None:
        refuse(select, f"no selected column is named {labels[0]!r} (input_label_cols): "
                       f"name the label, as in orders.amount >= 50 AS {labels[0]}")
    train = {"model": MODEL_TYPES[model_type], "features": features, "label": label,
             **{TRAIN_OPTIONS[key]: value for key, value in given.items()}}
    return Translation({"job": job, "train": train}, job_id=name)


def _feature(scope: Scope, node: exp.Expr) -> str:
    """A feature: an expression, or onehot(column) for a categorical column."""
    if isinstance(node, exp.Star):
        refuse(node, "name the model's features (SELECT * is not supported here)")
    text = scope.expression(node)
    if isinstance(node, exp.Column):
        table, _, column = text.partition(".")
        if scope.schema.table(table).column(column).type == "categorical":
            return f"onehot({text})"
    return text


def _options(statement: exp.Create) -> dict:
    properties = statement.args.get("properties")
    given = {}
    for node in properties.expressions if properties else []:
        if not isinstance(node, exp.Property):
            unsupported(node)
        key = node.name.lower()
        if key not in ("model_type", "input_label_cols", *TRAIN_OPTIONS):
            refuse(node, f"unknown option {key}; the options are model_type, input_label_cols, "
                         f"{', '.join(TRAIN_OPTIONS)}")
        given[key] = _value(node.args["value"])
        if key == "model_type" and given[key] not in MODEL_TYPES:
            refuse(node, f"model_type {given[key]!r}: one of {', '.join(MODEL_TYPES)}")
        if key == "input_label_cols" and (not isinstance(given[key], list)
                                          or len(given[key]) != 1):
            refuse(node, "input_label_cols: one label column, as ['name']")
    for key in REQUIRED:
        if key not in given:
            refuse(statement, f"CREATE MODEL needs OPTIONS ({key} = ...); it needs "
                              f"{', '.join(REQUIRED)}")
    return given


def _value(node: exp.Expr):
    """An option's literal: a number, a string, or a list of strings."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        return int(node.this) if node.this.isdigit() else float(node.this)
    if isinstance(node, exp.Array):
        return [_value(item) for item in node.expressions]
    refuse(node, "options take numbers, 'strings' and ['lists']")


def model_function(select: exp.Select, function: exp.Predict, schema: Schema, job: dict,
                   noise: dict, lookup: ModelLookup) -> Translation:
    """SELECT * FROM ML.PREDICT (or ML.EVALUATE) (MODEL m, (SELECT ... FROM ...))."""
    check_clauses(select, ("expressions", "from", "from_"))
    if [type(node) for node in select.expressions] != [exp.Star]:
        refuse(select.expressions[0], "select * from ML.PREDICT and ML.EVALUATE")
    evaluate = isinstance(function, Evaluate)
    name = model_name(function.this)
    inner = function.expression
    inner = inner.this if isinstance(inner, exp.Subquery) else inner
    if not isinstance(inner, exp.Select):
        refuse(function, "the rows to predict are a query: (SELECT ... FROM ...)")
    check_clauses(inner, ONE_SELECT)
    model = lookup(name)
    features, label = list(model["features"]), canonical(model["label"])
    scope = Scope.of(schema, inner)
    job = job_section(scope, inner, job)
    carry = []
    for node in inner.expressions:
        node = node.unalias()
        if isinstance(node, exp.Star):
            refuse(node, "name the columns (SELECT * is not supported here)")
        text = scope.expression(node)
        if text in features or text == label or any(f.startswith(f"{text} == ")
                                                    for f in features):
            continue  # the model's own
        if evaluate or not isinstance(node, exp.Column):
            refuse(node, f"{text} is not a feature of model {name} ({', '.join(features)})"
                         + (f" nor its label {label}" if evaluate else ""))
        carry.append(text)
    predict: dict = {"model_job": name, "features": features}
    if evaluate:
        predict.update({"label": label, **noise})
    elif noise:
        raise SqlError("noise applies to ML.EVALUATE's metrics, not to predictions")
    elif carry:
        predict["columns"] = carry
    return Translation({"job": job, "predict": predict})
