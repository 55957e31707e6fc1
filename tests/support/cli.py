"""The `twofold` command as a test runs it (a process of its own), and the README walkthrough's
files and owners' rules."""

import subprocess
import sys
from pathlib import Path

from tests.support.servers import CUSTOMERS

WALKTHROUGH = Path(__file__).resolve().parents[2] / "examples" / "walkthrough"
# each owner's rules, as in the README
WALKTHROUGH_RULES = {"alice": ["--policy", "alice-policy.toml"],
                     "bob": ["--recipients", "carol", "--aggregate-columns", "amount",
                             "--model-columns", "amount", "--min-privacy-level", "3"]}


def twofold(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "twofold.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def upload_customers(cluster, tmp_path) -> None:
    """alice uploads the customers table through the CLI, for carol to receive rows of."""
    data = tmp_path / "customers.csv"
    data.write_text(CUSTOMERS)
    upload = twofold("owner", "upload", data, "--table", "customers", "--schema",
                     cluster.folder / "schema.toml", "--config", cluster.owner_config("alice"),
                     "--recipients", "carol", "--outputs", "rows", "--dimension-columns",
                     "id,age,region")
    assert upload.returncode == 0, upload.stderr
