"""The book's configuration and build helpers: offline by construction (no Sphinx run here).

Building the book (``python scripts/build_book.py``) and opening it in Chromium
(``python scripts/check_book.py``) are separate commands, not part of the test run.
"""

import importlib.util
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

_spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)


def test_config_renders_committed_outputs_with_local_mathjax():
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    sphinx = config["sphinx"]["config"]
    assert sphinx["mathjax_path"] == "mathjax/tex-svg-full.js"  # relative: _static/mathjax/
    assert "sphinx_thebe" not in sphinx["extensions"]  # it writes a CDN URL into every page
    assert "sphinx.ext.intersphinx" not in sphinx["extensions"]
    assert sphinx["nb_render_markdown_format"] == "myst"  # errata tables: tables and $math$
    assert "dollarmath" in config["parse"]["myst_enable_extensions"]
    assert "://" not in (BOOK / "_config.yml").read_text().split("sphinx:")[1]


def test_mathjax_is_pinned_to_version_3_with_a_hash():
    lock = json.loads((BOOK / "package-lock.json").read_text())
    mathjax = lock["packages"]["node_modules/mathjax"]
    assert mathjax["version"].startswith("3.")
    assert mathjax["integrity"].startswith("sha512-")
    package = json.loads((BOOK / "package.json").read_text())
    assert package["dependencies"]["mathjax"].lstrip("^~").startswith("3.")


def test_toc_lists_the_given_chapters_in_order():
    paths = [Path("tutorial/01_autoencoder.ipynb"), Path("tutorial/06_errata.ipynb")]
    toc = yaml.safe_load(build_book.toc(paths))
    assert toc == {
        "format": "jb-book",
        "root": "index",
        "chapters": [{"file": "01_autoencoder"}, {"file": "06_errata"}],
    }
    assert "chapters" not in yaml.safe_load(build_book.toc([]))


def test_chapters_are_the_tutorial_notebooks_in_file_order():
    names = [p.name for p in build_book.chapters()]
    assert names == sorted(p.name for p in (ROOT / "tutorial").glob("*.ipynb"))
    assert "06_errata.ipynb" in names


def test_index_links_only_chapters_that_exist():
    page = build_book.index_page({"01_autoencoder.ipynb", "06_errata.ipynb"})
    assert "](01_autoencoder.ipynb)" in page and "](06_errata.ipynb)" in page
    assert "02_vae.ipynb" not in page
    assert "The variational auto-encoder (not written yet)" in page
    assert "has not been written yet" in page
    every = {f"{n}.ipynb" for n in ("01_autoencoder", "02_vae", "03_negative_binomial")}
    every |= {f"{n}.ipynb" for n in ("04_scvi_elbo", "05_scvi_in_practice", "06_errata")}
    full = build_book.index_page(every)
    assert "not written yet" not in full and "has not been written yet" not in full


def test_external_references_are_found_and_namespaces_are_not(tmp_path):
    (tmp_path / "a.html").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
    )
    (tmp_path / "b.html").write_text(
        '<script src="_static/mathjax/tex-svg-full.js"></script>'
        '<a class="reference external" href="https://doi.org/10.1038/s41592-018-0229-2">'
        "https://doi.org/10.1038/s41592-018-0229-2</a>"  # a hyperlink is not a request
        '<img src="https://example.org/figure.png">'
    )
    (tmp_path / "s.css").write_text("@font-face { src: url('https://fonts.example/x.woff2'); }")
    found = build_book.external_references(tmp_path)
    assert found == [
        "a.html: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js",
        "b.html: https://example.org/figure.png",
        "s.css: https://fonts.example/x.woff2",
    ]
