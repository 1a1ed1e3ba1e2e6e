"""Pages the docs take from where they live (run by mkdocs-gen-files at build time; nothing is copied into
the repository): the committed benchmark results (Markdown tables and their PNG figures) and the executed
notebooks, which mkdocs-jupyter renders with their stored outputs."""

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent

for source in sorted((ROOT / "benchmarks" / "results").rglob("*")):
    if source.suffix in (".md", ".png"):
        target = Path("results") / source.relative_to(ROOT / "benchmarks" / "results")
        mode = "w" if source.suffix == ".md" else "wb"
        with mkdocs_gen_files.open(target, mode) as out:
            out.write(source.read_text() if mode == "w" else source.read_bytes())
        if source.suffix == ".md":
            mkdocs_gen_files.set_edit_path(target, source.relative_to(ROOT))

for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
    with mkdocs_gen_files.open(Path("notebooks") / source.name, "w") as out:
        out.write(source.read_text())
