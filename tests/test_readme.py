"""The README's code blocks run as written (each in a fresh folder beside a link to the shared
samples) and print what the README says they print: each ``# -> value`` marker is one expected
line of output, in order (``...`` matches anything, as in doctest); a block without markers
prints nothing."""

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"

# Sections whose python blocks are complete programs (the others show calls on the reader's own
# files), with whether they read the real samples in ../shared/data.
READS_SHARED_DATA = {
    "Audio and video caption formats": False,
    "Audio and video: decode, describe, deduplicate": True,
    "Interleaved, chat and Data-Juicer formats": False,
    "Deduplicate": False,
    "Choose a subset: diversity, clusters, active learning": False,
    "Embed images, text, video and audio": False,
    "MMC4 similarity realignment": False,
    "Process: stats, PII redaction, quality filters": False,
    "The guide's quality score Q": False,
    "The whole workflow: `MultiModalDatasetBuilder`": True,
}


def expected_output(block: str) -> str:
    """The lines a block must print: the text after each ``# -> `` marker, in order."""
    return "".join(line.split("# -> ", 1)[1].rstrip() + "\n" for line in block.splitlines() if "# -> " in line)


def test_expected_output_reads_the_markers():
    block = 'print(len(ds))  # -> 3\nx = 1  # not a marker\nprint(report)   # -> {...}\n'
    assert expected_output(block) == "3\n{...}\n"
    assert expected_output("x = 1\n") == ""


def python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], re.S)


@pytest.mark.parametrize("section", sorted(READS_SHARED_DATA))
def test_readme_block_runs_as_written(section, tmp_path):
    if READS_SHARED_DATA[section] and not SHARED_DATA.is_dir():
        pytest.skip(f"the example reads the real samples at {SHARED_DATA}")
    blocks = python_blocks(section)
    assert blocks, f"README section {section!r} has no python block"
    project = tmp_path / "project"
    project.mkdir()
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").mkdir()
        os.symlink(SHARED_DATA, tmp_path / "shared" / "data")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1"}
    for block in blocks:
        completed = subprocess.run([sys.executable, "-c", block], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, f"README section {section!r}:\n{block}\n{completed.stderr[-3000:]}"
        want = expected_output(block)
        assert doctest.OutputChecker().check_output(want, completed.stdout, doctest.ELLIPSIS), (
            f"README section {section!r}:\n{block}\nprinted:\n{completed.stdout}\nthe markers say:\n{want}"
        )
