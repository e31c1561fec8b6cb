"""The errata chapter is generated from the ledger: one row per non-ok entry, same verdicts."""

import re

import pytest
import sympy as sp

from derivations import errata
from derivations.ledger import Entry, all_entries, by_label, classify

x = sp.symbols("x", real=True)


def _holds(lhs, rhs) -> bool:
    return sp.simplify(lhs - rhs) == 0


# A small ledger of our own, out of tutorial order, with pipes and prose to trip the markdown.
FAKE = [
    Entry("(10)", "square", r"(x+1)^2 = x^2 + 1", "wrong", r"(x+1)^2 = x^2 + 2x + 1",
          "sympy expand", lambda: classify(_holds((x + 1) ** 2, x**2 + 1)),
          demo="drops the cross term 2x", tier="breaks computation",
          consequence=lambda: (float(((x + 1) ** 2).subs(x, 1)), float((x**2 + 1).subs(x, 1)))),
    Entry("text after (10)", "claim", "the square is always 1", "wrong", "it is not",
          "sympy", lambda: classify(False), tier="wrong statement"),
    Entry("(2)", "derivative", r"\frac{d}{dx} x^2 = 2x", "ok", "", "sympy diff",
          lambda: classify(_holds(sp.diff(x**2, x), 2 * x))),
    Entry("text after (3)", "norm | pipes", r"\|x\|^2 = |x|^2 \mid p(z|x)", "slip",
          r"\|x\|^2 = |x|^2", "sympy Abs", lambda: classify(False, True)),
    Entry("(3)", "prose claim", "the text says the sum is three", "slip",
          "the sum is $1 + 2 = 3$", "arithmetic", lambda: classify(1 + 2 == 4, 1 + 2 == 3)),
]  # fmt: skip


def test_fake_checks_compute_their_recorded_verdicts():
    assert [(lab, rec) for lab, rec, comp in errata.recheck(FAKE) if rec != comp] == []


def test_table_has_one_row_per_non_ok_entry_in_tutorial_order():
    table = errata.errata_table(FAKE)
    assert list(table.columns) == list(errata.COLUMNS)
    # numeric order, a prose claim right after its equation; "(10)" sorts after "(3)"
    assert list(table["equation"]) == ["(3)", "text after (3)", "(10)", "text after (10)"]
    assert list(table["verdict"]) == ["slip", "slip", "wrong", "wrong"]
    assert list(table["tier"]) == ["slip", "slip", "breaks computation", "wrong statement"]
    assert "(2)" not in set(table["equation"])


def test_by_tier_leads_with_what_breaks_computation():
    ordered = [e.label for e in errata.by_tier(FAKE)]
    assert ordered == ["(10)", "text after (10)", "(3)", "text after (3)"]
    assert errata.tier_counts(FAKE) == {"breaks computation": 1, "wrong statement": 1, "slip": 2}
    real = errata.by_tier()
    tiers = [e.tier for e in real]
    assert tiers == sorted(tiers, key=errata.TIERS.index)
    assert sum(errata.tier_counts().values()) == len(real)


def test_display_math_puts_one_equation_per_line():
    md = errata.display_math(r"a=1,\ b=\frac{1}{2};\ c=(x, y)")
    body = md.split(r"\begin{gathered}")[1].split(r"\end{gathered}")[0]
    lines = [line.strip().rstrip("\\").strip() for line in body.strip().splitlines()]
    assert lines == ["a=1", r"b=\frac{1}{2}", "c=(x, y)"]  # the comma inside (x, y) stays
    # nothing is split inside a group such as \text{...}, nor mechanically inside an equation
    md = errata.display_math(r"\text{a, b; c}=x+y+z")
    assert r"\text{a, b; c}=x+y+z" in md and md.count("\\\\") == 0
    # a line starting with "[" is guarded, or \begin{gathered} would eat it as an option
    assert "\\begin{gathered}\n{}[a, b]" in errata.display_math("[a, b]")


def test_display_math_keeps_hand_written_lines_aligned():
    md = errata.display_math("P(X{=}0)=a+b\n=c\n+d\nq=\\text{x = y}\n\\text{remark}")
    body = md.split(r"\begin{aligned}")[1].split(r"\end{aligned}")[0]
    lines = [line.strip().removesuffix("\\\\").strip() for line in body.strip().splitlines()]
    # a continuation aligns its sign, a sum is indented, an equation aligns at its first
    # top-level "=" (not the one inside X{=}0), a remark starts at the alignment point
    assert lines == ["P(X{=}0) &=a+b", "&=c", r"&\quad +d", r"q &=\text{x = y}", r"&\text{remark}"]


def test_prose_claims_sit_next_to_their_equation():
    labels = ["(50)", "text after (50)", "text before (50)", "(49)", "Fig. 3 (text after (59))"]
    ordered = sorted(labels, key=errata.sort_key)
    assert ordered == ["(49)", "text before (50)", "(50)", "text after (50)", labels[-1]]


def test_counts():
    c = errata.verdict_counts(FAKE)
    assert c == {"ok": 1, "slip": 2, "wrong": 2, "total": 5, "numbered": 3}


def test_table_matches_the_real_ledger():
    entries = all_entries()
    table = errata.errata_table()
    non_ok = sorted(e.label for e in entries if e.verdict != "ok")
    assert sorted(table["equation"]) == non_ok
    assert len(table) == len(non_ok)  # exactly one row each
    for row in table.itertuples(index=False):
        entry = by_label(row.equation)
        assert (row.verdict, row.correction, row.printed) == (
            entry.verdict,
            entry.correction,
            entry.printed,
        )
    counts = errata.verdict_counts()
    assert counts["slip"] + counts["wrong"] == len(table)


def test_latex_detection():
    assert errata.is_latex(r"\hat W = U \Sigma")
    assert errata.is_latex("x^2")
    assert not errata.is_latex("the KL term has the wrong sign")
    assert not errata.is_latex(r"the prior is $\mathcal N(0, I)$")
    assert not errata.is_latex(r"replace \sigma by its square in the second term")


def test_markdown_rows_split_into_one_cell_per_header():
    md = errata.errata_markdown(FAKE)
    rows = md.splitlines()[2:]
    assert len(rows) == 4
    for row in rows:
        # split the way a table parser does: on pipes not preceded by a backslash
        cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
        assert len(cells) == len(errata.HEADERS), row


def test_markdown_of_nothing_is_a_sentence():
    assert "no `slip` or `wrong` entry" in errata.errata_markdown(
        [e for e in FAKE if e.verdict == "ok"]
    )


def _rendered_rows(md: str) -> list[list[str]]:
    """The table body as a MyST-like parser renders it (tables + dollar math): cells' HTML."""
    markdown_it = pytest.importorskip("markdown_it")
    dollarmath = pytest.importorskip("mdit_py_plugins.dollarmath")
    parser = markdown_it.MarkdownIt("commonmark").enable("table").use(dollarmath.dollarmath_plugin)
    html = parser.render(md)
    body = re.search(r"<tbody>(.*)</tbody>", html, re.S).group(1)
    return [
        re.findall(r"<td>(.*?)</td>", tr, re.S) for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


@pytest.mark.parametrize("entries", [FAKE, None], ids=["fake", "ledger"])
def test_markdown_renders_every_label(entries):
    expected = errata.errata_entries(entries)
    rows = _rendered_rows(errata.errata_markdown(entries)) if expected else []
    assert len(rows) == len(expected)
    for row, entry in zip(rows, expected, strict=True):
        assert len(row) == len(errata.HEADERS)
        assert row[0].startswith(f"<strong>{entry.label}</strong><br>"), row[0]
        assert row[1] == f"<strong>{entry.tier}</strong>"
        printed, correct = row[2].split("<br>")
        assert printed.startswith("printed: ") and correct.startswith("correct: ")
        plain = " ".join(entry.correction.split())
        if errata.is_latex(plain):
            # the correction reaches the math renderer whole, pipes and all
            math = re.fullmatch(r'correct: <span class="math inline">(.*?)</span>', correct, re.S)
            assert math is not None, correct
            unescaped = math.group(1).replace("&lt;", "<").replace("&gt;", ">")
            assert unescaped.replace("&amp;", "&") == plain


def test_verification_list_has_every_non_ok_entry_in_order():
    lines = errata.verification_markdown(FAKE).splitlines()
    assert [line.split("**")[1] for line in lines] == [
        "(3)",
        "text after (3)",
        "(10)",
        "text after (10)",
    ]
    assert "arithmetic" in lines[0] and "sympy expand" in lines[2]


def test_entries_markdown_gives_every_entry_with_display_math():
    md = errata.entries_markdown(FAKE)
    for e in errata.errata_entries(FAKE):
        assert f"**{e.label}** ({e.topic}): *{e.tier}*" in md
    # the LaTeX fields are display math; the prose ones stay prose
    assert md.count(r"\begin{gathered}") == 4  # (3)'s printed is prose, its correction has $
    assert "the text says the sum is three" in md
    assert "no `slip` or `wrong` entry" in errata.entries_markdown(
        [e for e in FAKE if e.verdict == "ok"]
    )
