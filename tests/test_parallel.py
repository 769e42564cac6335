"""ccnn's worker pool from a plain script: spawned workers where the script allows them, the caller's
process where it does not (a script without a main guard would run again in every worker)."""
import textwrap

import pytest

from scripts import run_script

SCRIPT = """
from ccnn.data import generate_synthetic, load_dataset
from ccnn.data.parallel import spawned_workers_can_start
from ccnn.preprocess import preprocess

def main():
    root = generate_synthetic("synth", subjects=3, frames=4, image_size=32, workers=2)
    faces = preprocess(load_dataset(root), size=16, workers=2, progress=False)
    print(spawned_workers_can_start(), len(faces.labels))
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_library_runs_from_a_plain_script(tmp_path, guarded):
    body = SCRIPT + ('if __name__ == "__main__":\n    main()\n' if guarded else "main()\n")
    (tmp_path / "script.py").write_text(textwrap.dedent(body))
    run = run_script("script.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(guarded), "12"]
