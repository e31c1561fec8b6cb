"""Every ```python block of README.md runs as written (a new user's first contact)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_examples():
    assert BLOCKS, "README.md has no ```python block"


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_block_runs(number, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(BLOCKS[number], f"README.md python block {number + 1}", "exec"), {})
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower(), printed
