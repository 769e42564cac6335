"""Running a Python script the way a user does (`python script.py` in a folder), with this test
session's ccnn on the path."""
import os
import signal
import subprocess
import sys
import time


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def run_script(script: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    env = _env()
    return subprocess.run([sys.executable, script], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def interrupt_script(path, args=(), wait: float = 1.0, timeout: float = 20):
    """Runs `python path *args`, waits for it to print "ready" and then `wait` seconds (it must
    still be running), sends SIGINT as Ctrl-C does; returns (stdout, stderr, returncode, seconds
    from the signal to the exit)."""
    child = subprocess.Popen([sys.executable, str(path), *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(wait)
        assert child.poll() is None, "the child finished before the signal"
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = child.communicate(timeout=timeout)
        return out, err, child.returncode, time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
