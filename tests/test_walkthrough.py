"""The README walkthrough, command by command, in a copy of examples/walkthrough."""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.support.cli import WALKTHROUGH, WALKTHROUGH_RULES

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


def twofold(folder, *args):
    return subprocess.run([sys.executable, "-m", "twofold.cli.main", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def wait_for_port(port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


REVENUE_SQL = ("SELECT customers.region, COUNT(*) AS n, SUM(orders.amount) AS total,\n"
               "AVG(orders.amount) AS mean FROM orders JOIN customers\n"
               "ON orders.customer = customers.id WHERE customers.age >= 30\n"
               "GROUP BY customers.region")  # as the README has it
EVALUATE_SQL = ("SELECT * FROM ML.EVALUATE(MODEL model1, (SELECT age, region, amount >= 50"
                " FROM orders JOIN customers ON customer = id))")


def sql_steps(folder):
    """The README's query, its explanation from SQL, and a refusal: one line, its position."""
    run = twofold(folder, "query", REVENUE_SQL, "--config", "carol.toml")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["region,n,total,mean", "north,3,162.4,54.13333333333333",
                                       "south,2,325.25,162.625"]
    run = twofold(folder, "job", "explain", "--sql", REVENUE_SQL, "--config", "carol.toml")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "the SQL's job spec:" and '  where = "customers.age >= 30"' in lines
    assert "join plan: top table orders" in lines and (
        "  orders join customers on orders.customer = customers.id: a sort of 11 rows on a "
        "63-bit key, with the columns of customers") in lines
    assert any(line.startswith("expected cost: ") and " rounds, " in line for line in lines)
    assert lines[-1].startswith("accepted")
    run = twofold(folder, "query", "SELECT region FROM customers\nLEFT JOIN orders ON "
                  "customer = id", "--config", "carol.toml")
    assert run.returncode == 1 and run.stderr == (
        "twofold: line 2, column 11: LEFT JOIN is not supported: the servers join matching "
        "rows only (inner joins)\n")
    sql = folder / "count.sql"
    sql.write_text("-- twofold: recipients = [\"carol\"]\nSELECT COUNT(*) FROM orders\n")
    run = twofold(folder, "job", "submit", "--sql-file", "count.sql", "--config", "carol.toml",
                  "--id", "count1", "--wait")
    assert run.returncode == 0 and run.stdout == "job count1: done\n", run.stderr


def test_readme_walkthrough(tmp_path):
    folder = tmp_path / "walkthrough"
    shutil.copytree(WALKTHROUGH, folder)
    for name in ("dealer", "server0", "server1", "alice", "bob", "carol"):
        assert twofold(folder, "keys", "generate", name, "--dir", "keys").returncode == 0
    services = [subprocess.Popen([sys.executable, "-m", "twofold.cli.main", *args], cwd=folder,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for args in (["dealer", "run", "--config", "dealer.toml"],
                             ["server", "run", "--config", "server0.toml"],
                             ["server", "run", "--config", "server1.toml"])]
    try:
        for port in (7300, 7100, 7101):
            wait_for_port(port)
        for data, table, owner in (("customers.csv", "customers", "alice"),
                                   ("orders.csv", "orders", "bob")):
            run = twofold(folder, "owner", "upload", data, "--table", table, "--schema",
                          "schema.toml", "--config", f"{owner}.toml", *WALKTHROUGH_RULES[owner])
            assert run.returncode == 0, run.stderr
        sql_steps(folder)
        run = twofold(folder, "job", "explain", "revenue.toml", "--config", "carol.toml")
        assert run.returncode == 0 and run.stdout.splitlines()[-1].startswith("accepted"), (
            run.stdout, run.stderr)
        run = twofold(folder, "job", "submit", "revenue.toml", "--config", "carol.toml", "--id",
                      "revenue1", "--wait")
        assert run.returncode == 0 and "done" in run.stdout, run.stderr
        run = twofold(folder, "reveal", "revenue1", "--config", "carol.toml")
        lines = run.stdout.strip().splitlines()
        assert lines[0] == "customers.region,count,sum(orders.amount),mean(orders.amount)"
        rows = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:]}
        assert rows["north"][0] == "3" and abs(float(rows["north"][1]) - 162.4) < 1e-3
        assert rows["south"][0] == "2" and abs(float(rows["south"][1]) - 325.25) < 1e-3
        run = twofold(folder, "job", "submit", "noisy.toml", "--config", "carol.toml", "--id",
                      "noisy1", "--wait")
        assert run.returncode == 0 and "done" in run.stdout, run.stderr
        budget = twofold(folder, "owner", "budget", "customers", "--config", "alice.toml")
        assert budget.returncode == 0, budget.stderr
        run = twofold(folder, "job", "submit", "train.toml", "--config", "carol.toml", "--id",
                      "model1", "--wait")
        assert run.returncode == 0 and "done" in run.stdout, run.stderr
        terms = twofold(folder, "reveal", "model1", "--config", "carol.toml").stdout
        assert terms.splitlines()[0] == "term,coefficient" and "intercept," in terms
        run = twofold(folder, "reveal", "model1", "--config", "carol.toml", "--json", "--out",
                      "model.json")
        model = json.loads((folder / "model.json").read_text())
        assert model["features"] == ["customers.age", "customers.region == 'north'",
                                     "customers.region == 'south'"]
        run = twofold(folder, "query", EVALUATE_SQL, "--config", "carol.toml")
        assert run.returncode == 0 and run.stdout.startswith("metric,value\n"), run.stderr
        assert "accuracy," in run.stdout and "\ncount,5\n" in run.stdout  # an integer
        python = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True,
                                text=True, timeout=300)
        assert python.returncode == 0, python.stderr
        for audit in (["owner", "audit", "customers", "--config", "alice.toml"],
                      ["job", "receipt", "revenue1", "--config", "carol.toml"],
                      ["audit", "verify", "--config", "carol.toml"]):
            run = twofold(folder, *audit)
            assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        assert "intercept" in python.stdout and "a 45-year-old in the north:" in python.stdout
        assert budget.stdout.splitlines()[:2] == [
            f"server {p}: customers spent epsilon 1, delta 1e-06 of 5 and 1e-05; left epsilon 4,"
            " delta 9e-06" for p in (0, 1)]
    finally:
        for service in services:
            service.terminate()
            service.wait(timeout=10)
