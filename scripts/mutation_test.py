"""Mutation testing of the model's mathematics: does the suite notice when the maths breaks?

Two kinds of mutants, each applied to a fresh copy of the repository, never to the working tree:

* **named mutants** — the tutorial's own mistakes (``MISTAKES`` in ``scripts/mutants.py``),
  injected into the code as a student copying the printed formula would. Each must be killed,
  and the failing test's message must name the tutorial equation concerned (``eq. (NN)`` or
  ``ledger (NN)``), so that the student knows where to look.
* **operator mutants** — generated from the AST of the target files, one change each:
  ``+``/``-`` and ``*``/``/`` swapped, ``**`` replaced by ``*``, a unary minus removed, a
  comparison flipped, a numeric constant changed, and a maths function swapped for a neighbour
  (``log``/``log1p``, ``exp``/``expm1``, ``softplus``/``relu``, ``lgamma``/``digamma``,
  ``softmax``/``log_softmax``, ``sigmoid``/``tanh``), ``sum`` for ``mean``.

Why a small harness rather than mutmut: the targets are three short files of formulas; a
harness of ~200 lines shows every mutant as a readable diff, needs no configuration of the
package layout, and runs the named (tutorial) mutants with a check of the failure message,
which no general tool does.

    python scripts/mutation_test.py                  # named + operator mutants
    python scripts/mutation_test.py --named-only
    python scripts/mutation_test.py --list           # print the mutants, run nothing

Each mutant runs ``pytest -x -q`` on the tests that exercise the maths (``TESTS``), with a
time limit; a mutant is *killed* when pytest fails (or times out), *survived* when it passes.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mutants import MISTAKES  # noqa: E402

TARGETS = [
    "scvi_edu/distributions.py",
    "scvi_edu/fast_likelihood.py",
    "scvi_edu/module.py",
    "scvi_edu/nn.py",
]
TESTS = [
    "tests/test_likelihood.py",
    "tests/test_likelihood_gradient.py",
    "tests/test_distributions.py",
    "tests/test_module.py",
    "tests/test_negative_binomial.py",
    "tests/test_elbo.py",
]

SWAPS = {
    "log": "log1p",
    "log1p": "log",
    "exp": "expm1",
    "expm1": "exp",
    "softplus": "relu",
    "lgamma": "digamma",
    "softmax": "log_softmax",
    "log_softmax": "softmax",
    "sigmoid": "tanh",
    "sum": "mean",
    "mean": "sum",
    "logsumexp": "amax",
    "sqrt": "exp",
}
BINOPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
}
CMPOPS = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt, ast.Eq: ast.NotEq}


@dataclass
class Mutant:
    name: str
    path: str
    line: int
    source: str  # the whole mutated file
    description: str
    equation: str | None = None  # for named mutants: the tutorial label the message must name


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _skip(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Skip code that is not maths: raise statements, error messages, __all__, type hints."""
    while node is not None:
        if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.arg)):
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return True
        if isinstance(node, ast.If) and "raise" in ast.unparse(node.body[0])[:5]:
            return True
        node = parents.get(id(node))
    return False


def operator_mutants(path: str) -> list[Mutant]:
    """One mutant per mutable node of the file, generated from its AST."""
    text = (ROOT / path).read_text()
    tree = ast.parse(text)
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    docstrings = _docstring_nodes(tree)
    sites = []
    for node in ast.walk(tree):
        if _skip(node, parents) or not hasattr(node, "lineno"):
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            sites.append((node, "op", BINOPS[type(node.op)]))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sites.append((node, "neg", None))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in CMPOPS:
            sites.append((node, "cmp", CMPOPS[type(node.ops[0])]))
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) in (int, float)
            and not isinstance(node.value, bool)
            and id(node) not in docstrings
        ):
            sites.append((node, "const", None))
        elif isinstance(node, ast.Attribute) and node.attr in SWAPS:
            sites.append((node, "func", SWAPS[node.attr]))
    mutants = []
    for k, (node, kind, repl) in enumerate(sites):
        tree_k = ast.parse(text)
        target = [n for n in ast.walk(tree_k) if _same(n, node)][0]
        before = ast.unparse(target)
        if kind == "op":
            target.op = repl()
        elif kind == "cmp":
            target.ops = [repl()]
        elif kind == "func":
            target.attr = repl
        elif kind == "const":
            target.value = (target.value + 1) if target.value in (0, 1) else target.value * 2
        elif kind == "neg":
            _replace(tree_k, target, target.operand)
            target = target.operand
        after = ast.unparse(target)
        if before == after:
            continue
        mutants.append(
            Mutant(
                name=f"{Path(path).stem}:{node.lineno}:{kind}{k}",
                path=path,
                line=node.lineno,
                source=ast.unparse(tree_k),
                description=f"{before}  ->  {after}",
            )
        )
    return mutants


def _same(a: ast.AST, b: ast.AST) -> bool:
    keys = ("lineno", "col_offset", "end_lineno", "end_col_offset")
    return type(a) is type(b) and all(getattr(a, k, None) == getattr(b, k, None) for k in keys)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new


def named_mutants() -> list[Mutant]:
    """The tutorial's mistakes as text substitutions (scripts/mutants.py)."""
    out = []
    for m in MISTAKES:
        text = (ROOT / m["path"]).read_text()
        if text.count(m["find"]) != 1:
            raise SystemExit(
                f"named mutant {m['name']!r}: expected exactly one occurrence of {m['find']!r} "
                f"in {m['path']}, found {text.count(m['find'])} — update scripts/mutants.py"
            )
        out.append(
            Mutant(
                name=m["name"],
                path=m["path"],
                line=text[: text.index(m["find"])].count("\n") + 1,
                source=text.replace(m["find"], m["replace"]),
                description=m["description"],
                equation=m["equation"],
            )
        )
    return out


def make_copy() -> Path:
    """A copy of the tracked files (plus untracked, not ignored), where mutants are applied."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    dest = Path(tempfile.mkdtemp(prefix="scvi-edu-mutants-"))
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def run_tests(copy: Path, timeout: float) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1")
    tests = [t for t in TESTS if (copy / t).exists()]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        res = subprocess.run(
            cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, "timeout"
    return res.returncode == 0, res.stdout + res.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--named-only", action="store_true")
    ap.add_argument("--operators-only", action="store_true", help="skip the named mutants")
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--sample", type=int, help="run a seeded random sample of the operator mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--lines",
        help="only operator mutants in PATH:FIRST-LAST (e.g. scvi_edu/distributions.py:150-260)",
    )
    args = ap.parse_args()

    generated = []
    if not args.named_only:
        for path in TARGETS:
            if (ROOT / path).exists():
                generated += operator_mutants(path)
        if args.lines:
            path, span = args.lines.rsplit(":", 1)
            first, last = (int(v) for v in span.split("-"))
            generated = [m for m in generated if m.path == path and first <= m.line <= last]
        if args.sample is not None and args.sample < len(generated):
            pick = random.Random(args.seed).sample(range(len(generated)), args.sample)
            generated = [generated[i] for i in sorted(pick)]
    mutants = ([] if args.operators_only else named_mutants()) + generated
    if args.list:
        for m in mutants:
            print(f"{m.name:40s} {m.path}:{m.line}  {m.description}")
        print(f"{len(mutants)} mutants")
        return

    copy = make_copy()
    ok, out = run_tests(copy, args.timeout)
    if not ok:
        raise SystemExit(f"the unmutated suite fails in the copy; fix it first:\n{out[-3000:]}")
    check = subprocess.run(
        [sys.executable, "-c", "import scvi_edu; print(scvi_edu.__file__)"],
        cwd=copy,
        env=dict(os.environ, PYTHONPATH=str(copy)),
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not check.startswith(str(copy)):
        raise SystemExit(f"the copy imports scvi_edu from {check}, not from the copy")

    results = []
    start = time.perf_counter()
    for i, m in enumerate(mutants, 1):
        original = (copy / m.path).read_text()
        (copy / m.path).write_text(m.source)
        try:
            passed, out = run_tests(copy, args.timeout)
        finally:
            (copy / m.path).write_text(original)
        status = "survived" if passed else "killed"
        points = None
        if m.equation is not None and not passed:
            num = re.escape(m.equation.strip("()"))
            points = re.search(rf"(eq\.|ledger|equation)\s*\({num}\)", out) is not None
        results.append({**m.__dict__, "status": status, "points_to_equation": points})
        results[-1].pop("source")
        flag = "" if points in (None, True) else "  (message does not name the equation!)"
        print(f"[{i}/{len(mutants)}] {status:8s} {m.name}: {m.description}{flag}", flush=True)

    shutil.rmtree(copy, ignore_errors=True)
    killed = sum(r["status"] == "killed" for r in results)
    named = [r for r in results if r["equation"] is not None]
    print(
        f"\n{len(results)} mutants, {killed} killed, {len(results) - killed} survived "
        f"({100 * killed / max(1, len(results)):.1f} % killed) "
        f"in {time.perf_counter() - start:.0f} s"
    )
    print(
        f"named (tutorial) mutants: {sum(r['status'] == 'killed' for r in named)}/{len(named)} "
        f"killed, {sum(bool(r['points_to_equation']) for r in named)}/{len(named)} with a message "
        "naming the equation"
    )
    for r in results:
        if r["status"] == "survived":
            print(f"  survived: {r['name']}: {r['description']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
