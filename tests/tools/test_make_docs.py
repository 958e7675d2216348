"""tools/make_docs.py: the committed architecture guide matches the code, and --check notices
when it does not.

The tool is called in-process through ``main([...])``; it is loaded from its file since ``tools/``
is not a package. Only the first test generates the guide (a few seconds); the others replace
``generate`` to test the check and write logic alone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from detseg.backbones.build import BACKBONES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def make_docs():
    path = REPO / "tools" / "make_docs.py"
    spec = importlib.util.spec_from_file_location("_detseg_tool_make_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_guide_is_up_to_date(make_docs, capsys):
    code = make_docs.main(["--check"])
    out, err = capsys.readouterr()
    assert code == 0, f"docs are stale; run `python tools/make_docs.py`\n{err}"
    assert "up to date" in out
    text = (REPO / "docs" / "architectures.md").read_text(encoding="utf-8")
    for name in BACKBONES:
        assert f"#### `{name}`" in text


def test_check_fails_on_stale_or_missing_file(make_docs, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(make_docs, "generate", lambda: "# guide\n| a | 1 |\n")
    path = tmp_path / "architectures.md"
    assert make_docs.main(["--only", "guide", "--check", "--output", str(path)]) == 1
    assert "is missing" in capsys.readouterr().err

    path.write_text("# guide\n| a | 2 |\n", encoding="utf-8")
    assert make_docs.main(["--only", "guide", "--check", "--output", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path} is stale" in err and "python tools/make_docs.py" in err
    assert "-| a | 2 |" in err and "+| a | 1 |" in err  # the diff shows what changed
    assert path.read_text(encoding="utf-8") == "# guide\n| a | 2 |\n"  # --check never writes


def test_write_then_check(make_docs, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(make_docs, "generate", lambda: "# guide\n")
    path = tmp_path / "sub" / "architectures.md"
    assert make_docs.main(["--only", "guide", "--output", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == "# guide\n"
    assert make_docs.main(["--only", "guide", "--check", "--output", str(path)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_zoo_has_a_row_per_config_and_says_what_was_not_measured():
    text = (REPO / "docs" / "model_zoo.md").read_text(encoding="utf-8")
    computed = text.split("## Computed")[1].split("## Measured")[0]
    measured = text.split("## Measured")[1].split("## GPU speed")[0]
    for config in (REPO / "configs").glob("*.yaml"):
        assert computed.count(f"`{config.name}`") == 1, config.name
        assert measured.count(f"`{config.name}`") == 1, config.name
    assert "not measured" in text


def test_real_data_section_shows_the_overfit_curves_with_their_command(make_docs):
    entry = {"command": "python benchmarks/real_data.py --curves runs/a", "data": "the coco128 overfit configs",
             "picture": "images/coco128_overfit_curves.png"}
    text = "\n".join(make_docs.real_data_section({"coco128_overfit": entry}))
    assert "![coco128 overfit configs](images/coco128_overfit_curves.png)" in text
    assert "`python benchmarks/real_data.py --curves runs/a`" in text and "not measured" not in text
    assert make_docs.real_data_section({}) == ["## Real images", "", "not measured", ""]
