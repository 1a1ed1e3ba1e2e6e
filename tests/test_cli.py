import subprocess
import sys

from bnn_asym.cli import main


def test_demo_shows_symmetry_check(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("standard", "w_asym", "sigma_asym")
    }
    assert lines["standard"].endswith("yes") and lines["w_asym"].endswith("no") and lines["sigma_asym"].endswith("no")


def test_console_script_reports_bad_input_without_traceback():
    r = subprocess.run([sys.executable, "-m", "bnn_asym.cli", "demo", "--seed", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and "seed" in r.stderr and "Traceback" not in r.stderr
