"""The walkthrough's training job from Python: carol submits it, waits, and gets the model as
a table of coefficients and as a fitted scikit-learn estimator."""

import numpy as np

import twofold

carol = twofold.Client("carol.toml")
model = carol.run(open("train.toml").read())
print(model.frame().to_string(index=False))
estimator = model.to_sklearn()
# customers.age, then onehot(customers.region): north, south
print("a 45-year-old in the north:", estimator.predict(np.array([[45, 1, 0]]))[0])
