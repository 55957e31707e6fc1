"""The walkthrough's training job from Python: carol submits it, waits, and gets the model as
a table of coefficients and as a fitted scikit-learn estimator."""

import pandas as pd

import twofold

carol = twofold.Client("carol.toml")
model = carol.run(open("train.toml").read())
print(model.frame().to_string(index=False))
estimator = model.to_sklearn(raw=True)  # takes raw rows: it computes the model's features
print("a 45-year-old in the north:",
      estimator.predict(pd.DataFrame({"age": [45], "region": ["north"]}))[0])
