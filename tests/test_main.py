"""The entry point (`minitorch-conv`, `python -m minitorch_conv`): it starts, routes, and stays light."""
import re
import subprocess
import sys

import pytest

from minitorch_conv import demo
from minitorch_conv.__main__ import main

EXTRAS = ("mnist1d", "sklearn", "scipy", "matplotlib", "tqdm")


def test_info_reports_version_simd_threads_flags_and_versions(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"minitorch_conv \d+\.\d+", out)
    assert re.search(r"SIMD path: +(avx512|avx2|generic)", out)
    assert re.search(r"threads: +\d+", out)
    assert re.search(r"compiler flags: +.*-O\d", out)
    assert re.search(r"numpy \d+\.\d+.*cffi \d+\.\d+", out)


def test_compile_flags_are_the_ones_the_library_was_built_with():
    from minitorch_conv import _build, _kernels
    assert _kernels.build_flags() == " ".join(_build.COMPILE_ARGS)


def test_no_subcommand_means_demo_with_its_options(monkeypatch):
    seen = []
    monkeypatch.setattr(demo, "run", seen.append)  # add_parser looks `run` up when main() builds the parser
    assert main([]) == 0 and main(["--quick"]) == 0 and main(["--steps", "7"]) == 0
    assert [args.command for args in seen] == ["demo", "demo", "demo"]
    assert [args.steps for args in seen] == [demo.PAPER_STEPS, demo.QUICK_STEPS, 7]


def test_python_dash_m_runs_in_a_fresh_process():
    run = subprocess.run([sys.executable, "-m", "minitorch_conv", "info"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "SIMD path" in run.stdout


def test_the_core_and_the_command_line_import_no_extra():
    code = ("import sys, minitorch_conv, minitorch_conv.__main__\n"
            f"print(sorted(m for m in {EXTRAS!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_missing_extra_is_one_line_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # makes `import mnist1d` raise ImportError
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    assert main(["demo", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "'mnist1d'" in err and "pip install 'minitorch-conv[examples]'" in err


@pytest.mark.parametrize("argv, hidden, name", [
    (["train", "--data", "digits", "--epochs", "1"], ("sklearn", "sklearn.datasets"), "scikit-learn"),
    (["efficiency", "--quick"], ("scipy", "scipy.sparse"), "scipy"),
    (["edges"], ("matplotlib", "matplotlib.pyplot", "matplotlib.cbook", "matplotlib.image"), "matplotlib"),
    (["train", "--data", "mnist1d", "--epochs", "1"], ("tqdm",), "tqdm"),
])
def test_every_extra_when_missing_is_named_in_one_line(monkeypatch, capsys, tmp_path, argv, hidden, name):
    from minitorch_conv import datasets
    datasets.digits.cache_clear()  # a cached data set would never import scikit-learn again
    monkeypatch.chdir(tmp_path)
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"'{name}'" in err and "pip install 'minitorch-conv[examples]'" in err
