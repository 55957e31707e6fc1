"""The analyst's side of Twofold, from Python: connect with a config file, upload a table or a
DataFrame, submit a job, wait for it, and reveal its output as a DataFrame, a dict or a
scikit-learn model.

    import twofold
    client = twofold.Client("carol.toml")
    result = client.run(open("train.toml").read())
    model = result.to_sklearn()
"""

from twofold.client import Client, JobFailed
from twofold.results import Result

__all__ = ["Client", "JobFailed", "Result"]
