"""Running a Python script the way a user does (`python script.py` in a folder), with this test
session's ccnn on the path."""
import os
import subprocess
import sys


def run_script(script: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, script], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
