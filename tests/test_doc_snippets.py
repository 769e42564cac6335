"""The Python snippets of the READMEs and every docs/ page run as written: each ```python block of a
document is saved as a script and run with `python`, in order, in one empty folder per document (a
block may use the files of the blocks before it). A block preceded by `<!-- skip-test -->` is not run."""
import re
from pathlib import Path

import pytest

from scripts import run_script

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "decoder/README.md", "docs/design.md", "docs/data.md", "docs/training.md", "docs/decoder.md", "docs/copula.md"]
BLOCK = re.compile(r"(<!-- skip-test -->\s*)?```python\n(.*?)```", re.S)


def python_blocks(text: str) -> list[str]:
    return [code for skip, code in BLOCK.findall(text) if not skip]


def test_blocks_are_found_and_skips_honoured():
    text = "a\n```python\nx = 1\n```\n<!-- skip-test -->\n```python\nbig()\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == ["x = 1\n"]


def test_every_document_with_python_snippets_is_run():
    documents = [ROOT / "README.md", ROOT / "decoder" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    with_snippets = {str(d.relative_to(ROOT)) for d in documents if python_blocks(d.read_text())}
    assert with_snippets <= set(DOCUMENTS)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_snippets_run(document, tmp_path):
    blocks = python_blocks((ROOT / document).read_text())
    assert blocks, f"{document} has no python snippet"
    for k, code in enumerate(blocks):
        script = tmp_path / f"snippet_{k}.py"
        script.write_text(code)
        run = run_script(script.name, tmp_path, timeout=300)
        assert run.returncode == 0, f"{document}, python block {k + 1}:\n{code}\n{run.stderr[-3000:]}"
