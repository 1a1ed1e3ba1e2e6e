"""The documentation agrees with the code it describes."""

from pathlib import Path

from bnn_asym.inference.catalog import options_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_engine_option_tables_are_the_ones_the_engines_declare():
    """docs/guide/fitting.md holds `bnn-asym engines --markdown` between its markers; regenerate it after
    changing an option."""
    text = (DOCS / "guide" / "fitting.md").read_text()
    start = text.index("-->\n", text.index("<!-- engine options: generated")) + len("-->\n")
    end = text.index("<!-- end of engine options -->")
    assert text[start:end].strip() == options_markdown().strip()
