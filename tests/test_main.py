"""The main job (`python -m minitorch_conv`): it runs, reports what it should, and learns."""
import re
import subprocess
import sys

import pytest

from minitorch_conv.__main__ import main


def test_info_reports_version_simd_and_threads(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"minitorch_conv \d+\.\d+", out)
    assert re.search(r"SIMD path: (avx512|avx2|generic)", out)
    assert re.search(r"threads: +\d+", out)


def test_demo_trains_an_mlp_on_mnist1d_well_above_chance():
    pytest.importorskip("mnist1d")
    run = subprocess.run([sys.executable, "-m", "minitorch_conv", "--steps", "600", "--seconds", "60"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "600 steps" in run.stdout
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", run.stdout).group(1))
    assert accuracy > 45.0  # chance is 10%; the paper's fully trained MLP reaches 68%


def test_a_missing_extra_is_one_line_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # makes `import mnist1d` raise ImportError
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    assert main(["demo", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'minitorch-conv[examples]'" in err and "Traceback" not in err
