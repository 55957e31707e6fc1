"""The command line, run as a user would: real processes, real sockets."""

import json
import os
import stat
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from twofold.bench.protocols import OPS
from twofold.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


def test_keys_generate_writes_a_private_secret(tmp_path):
    result = CliRunner().invoke(app, ["keys", "generate", "alice", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    secret = tmp_path / "alice.key_secret"
    assert (tmp_path / "alice.key").exists()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_commands_start_without_the_heavy_libraries():
    """Every command imports the CLI: scipy (through dp-accounting), numba and scikit-learn
    load only where used, or each command would wait over a second before doing anything."""
    run = subprocess.run([sys.executable, "-c", "import sys, twofold.cli.main; "
                          "print(sorted({'scipy', 'dp_accounting', 'numba', 'sklearn'} "
                          "& set(sys.modules)))"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr


def test_dealer_with_a_missing_config_fails_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "twofold.cli.main", "dealer", "run", "--config",
                          str(tmp_path / "nope.toml")], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("twofold:") and "nope.toml" in run.stderr
    assert "Traceback" not in run.stderr


def test_bench_mpc_json_on_real_processes():
    run = subprocess.run([sys.executable, "-m", "twofold.cli.main", "bench", "mpc", "--n", "300",
                          "--repeat", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["machine"]["cores"] == os.cpu_count() and report["machine"]["numpy"]
    rows = report["rows"]
    assert [row["op"] for row in rows] == list(OPS)
    for row in rows:
        assert {"op", "n", "seconds", "min_s", "max_s", "online_s", "offline_s", "bytes",
                "rounds"} <= set(row)
        assert row["n"] == 300 and row["bytes"] > 0 and row["rounds"] > 0 and row["runs"] == 2
        assert row["min_s"] <= row["seconds"] <= row["max_s"]


@pytest.mark.parametrize("command", ["mpc", "ml"])
def test_bench_refuses_an_unknown_correlation_source(command):
    run = subprocess.run([sys.executable, "-m", "twofold.cli.main", "bench", command,
                          "--correlations", "trusted-friend"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "--correlations must be one of dealer, ot" in run.stderr


def test_bench_upload_json_on_real_processes():
    run = subprocess.run([sys.executable, "-m", "twofold.cli.main", "bench", "upload",
                          "--rows", "500", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)["rows"]
    assert row["op"] == "upload" and row["n"] == 500 and row["bytes"] > 500 * 8 * 8


def test_demo_runs_end_to_end_without_a_dealer_and_cleans_up(tmp_path):
    """The demo with its two servers alone (OT): the same results as with a dealer. Its
    temporary folder goes under tmp_path (TMPDIR), where no other test run writes."""
    run = subprocess.run([sys.executable, "-m", "twofold.cli.main", "demo", "--iterations", "300",
                          "--epsilon", "50", "--correlations", "ot", "--json"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["statistics"]["count"] > 1000
    assert result["model"]["released"] and result["model"]["dp_ledger"]["epsilon"] == 50.0
    accuracy = result["accuracy"]  # little noise at epsilon 50: MPC close to plaintext
    assert accuracy["mpc"] > 0.65 and abs(accuracy["mpc"] - accuracy["plaintext_same_noise"]) < 0.08
    assert {"sort", "train"} <= set(result["costs"]["training"])
    assert list(tmp_path.glob("twofold-*")) == []


def test_the_demo_declares_a_join_size_its_noisy_size_check_passes():
    """Level 5 checks |J| >= min_join_size with noise (two servers' Gaussians): the demo's
    declared size sits more than 5 deviations below its join (with 0.8 |J| declared, about
    1 demo in 80 had its model withheld and then crashed on it)."""
    import tomllib

    from twofold.bench import oulad
    from twofold.cli.demo import DATA
    from twofold.ml.dp import count_sigma
    from twofold.mpc.privacy import Privacy
    from twofold.servers.jobspec import SIZE_CHECK_EPSILON

    rows = len(oulad.load_joined(DATA))
    declared = tomllib.loads(oulad.training_spec(50.0, 10, rows))["train"]["min_join_size"]
    check = Privacy(epsilon=SIZE_CHECK_EPSILON, delta=1e-6, tau=oulad.TAU)
    deviation = 2 ** 0.5 * count_sigma(check)
    assert 0 < declared < rows - 5 * deviation


def test_the_demo_reports_a_withheld_model_instead_of_failing(capsys):
    from twofold.cli import demo

    ledger = {"epsilon": 2.0, "delta": 1e-6, "tau": 3, "sigma": 1.5}
    withheld = {"kind": "model", "released": False, "info": {"dp_ledger": ledger},
                "reason": "the join did not reach min_join_size 993: nothing was released"}
    results = {"statistics": {}, **demo.model_results(withheld, None, 10), "costs": {},
               "seconds": 1.0}
    assert results["accuracy"] is None and "coefficients" not in results["model"]
    demo._print(results)
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "withheld: the join did not reach min_join_size 993" in printed


def test_a_secret_key_is_never_readable_by_others(tmp_path, monkeypatch):
    """Created 0600 from the start: with a permissive umask and chmod unavailable (it used to
    write the file with the umask's mode, then chmod it), the mode is still 0600, and an older
    world-readable file is replaced, not reused."""
    from twofold.mpc.curve import generate_keypair, load_keypair, load_public_key

    (tmp_path / "bob.key_secret").write_text("old")
    os.chmod(tmp_path / "bob.key_secret", 0o644)
    previous = os.umask(0)
    try:
        monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: 1 / 0)
        public, secret = generate_keypair(tmp_path, "bob")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert load_keypair(secret).public == load_public_key(public)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob.key", "bob.key_secret"]
