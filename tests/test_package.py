import subprocess
import sys

import ccnn
import ccnn_ext


def test_extension_loads_and_reports_cuda():
    assert isinstance(ccnn_ext.built_with_cuda(), bool)
    assert ccnn.__version__ == ccnn_ext.__version__


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "ccnn.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: ccnn" in out.stdout
