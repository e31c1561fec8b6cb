"""Assignments: implement scVI's formulas yourself, graded by pytest.

    python -m scvi_edu.assignments list           # the tasks and the command that grades each
    python -m scvi_edu.assignments create DEST    # a student working tree at DEST
    python -m scvi_edu.assignments verify         # CI: the mechanism works (see ``verify``)

Each task is a region of the package's own source, between the comments ``# TASK n.m begin``
and ``# TASK n.m end``: the package is the solution, there is no second copy. ``create`` copies
the repository's tracked files (``git ls-files``) to DEST and replaces every region by
``raise NotImplementedError("Task n.m — eq. (NN): ...")``, with a note saying what to implement
and which chapter explains it (in the function's docstring when the region is a whole body).
The markers stay, so the student sees where to write.

Grading: ``pytest -m task_n_m`` runs the task's tests (``tests/test_tasks.py``, class
``TestTaskN_M``). Each compares the student's function with an independent reference (scipy,
torch.distributions, quadrature, a closed form) and, when the answer equals one of the
tutorial's own mistakes (a KL added, a softmax without exp, the ZINB weights swapped, ...), says
which. Some tasks call others (``needs``): a test stopped by another task's
``NotImplementedError`` names that task.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TASKS", "Task", "create", "stub_source", "verify", "INDEPENDENT_TESTS"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Task:
    """One assignment: a marked region of ``path`` inside ``function``."""

    id: str  # "3.2"
    equation: str  # "eq. (58)"
    chapter: str  # the chapter that explains it
    path: str  # file relative to the repository root
    function: str
    title: str  # one line: what the region computes
    hint: str  # what to implement (a few sentences, no code)
    needs: tuple[str, ...] = ()  # tasks the tests call into

    @property
    def marker(self) -> str:
        return "task_" + self.id.replace(".", "_")

    @property
    def command(self) -> str:
        return f"pytest -m {self.marker}"

    @property
    def message(self) -> str:
        return f"Task {self.id} — {self.equation}: {self.title}"


_CH3 = "chapter 3 (tutorial/03_negative_binomial.ipynb)"
_CH4 = "chapter 4 (tutorial/04_scvi_elbo.ipynb)"
_CH5 = "chapter 5 (tutorial/05_scvi_in_practice.ipynb)"

TASKS: list[Task] = [
    Task("3.1", "eq. (56)", _CH3, "scvi_edu/distributions.py", "log_nb_positive",
         "the log-pmf of the negative binomial NB(x | mu, theta)",
         "Return log Gamma(x + theta) - log Gamma(theta) - log x! + theta log(theta/(theta+mu)) "
         "+ x log(mu/(theta+mu)), elementwise. Use log_gamma_ratio for the first two terms and "
         "log1p for theta log(theta/(theta+mu)) (no cancellation when theta >> mu)."),
    Task("3.2", "eq. (58)", _CH3, "scvi_edu/distributions.py", "log_zinb_positive",
         "the log-pmf of the zero-inflated NB, corrected",
         "pi = sigmoid(zi_logits) is the probability of a technical zero: p(0) = pi + (1 - pi) "
         "NB(0), p(x > 0) = (1 - pi) NB(x). Work in logs (softplus: log pi = -softplus(-zi), "
         "log(1 - pi) = -softplus(zi)). The tutorial's (58) swaps the weights of the zero case "
         "and writes x log(x / (theta + mu)): avoid both. Train with "
         'VAE(..., likelihood_gradient="autograd") to use your function. The test that trains '
         "it needs the model too: tasks 4.1, 4.2, 4.3, 4.5 and 5.1.",
         needs=("3.1", "4.1", "4.2", "4.3", "4.5", "5.1")),
    Task("3.3", "eq. (55)", _CH3, "scvi_edu/distributions.py", "log_poisson",
         "the log-pmf of the Poisson",
         "Return x log(rate) - rate - log x! elementwise (log x! = lgamma(x + 1)); use "
         "_log_floor(rate) for log(rate) so that rate = 0 stays finite."),
    Task("4.1", "eq. (63)", _CH4, "scvi_edu/distributions.py", "kl_normal",
         "the KL divergence of two normals",
         "KL(N(loc1, scale1^2) || N(loc2, scale2^2)) elementwise, in closed form; scale is a "
         "standard deviation, not a variance."),
    Task("4.2", "eq. (61)", _CH4, "scvi_edu/module.py", "VAE.inference",
         "the reparameterised sample z = loc + scale * eps",
         "Draw eps ~ N(0, I) of shape shape + qz_loc.shape (torch.randn, dtype and device of x) "
         "and set z = qz_loc + qz_scale * eps, so that gradients flow to the encoder "
         "(torch.normal or Normal(...).sample() would cut them)."),
    Task("4.3", "Fig. 3 and eq. (56)", _CH4, "scvi_edu/nn.py", "DecoderSCVI.forward",
         "the softmax decoder px_scale = softmax(o) and px_rate = l * px_scale",
         "px_scale is rho_g = exp(o_g) / sum_j exp(o_j) over genes (the last dimension; Fig. 3 "
         "drops the exp of the numerator) and px_rate the NB mean mu = l rho; library is the "
         "*log* library size."),
    Task("4.4", "eq. (62)", _CH4, "scvi_edu/data.py", "library_size_prior",
         "the per-batch prior of the log library size, corrected",
         "For each batch b: mu_b = mean of log(sum_g x_ig) over its cells and sigma_b^2 = the "
         "mean of the *squared* deviations from mu_b (population variance). The tutorial's (62) "
         "squares the sum of the deviations, which is 0. X may be a scipy.sparse matrix; a "
         "batch without cells raises ValueError."),
    Task("4.5", "eq. (69)", _CH4, "scvi_edu/module.py", "VAE.loss",
         "the ELBO assembled with the KL terms subtracted, and the loss",
         "elbo = -(reconstruction_loss + kl_z + kl_l) per cell (the tutorial's (69) adds the KL "
         "terms); loss = mean over cells of reconstruction_loss + kl_weight * kl_z + kl_l; "
         "return LossOutput(loss, reconstruction_loss, kl_z, kl_l, elbo)."),
    Task("5.1", "eq. (70)", _CH5, "scvi_edu/train.py", "kl_weight_schedule",
         "the KL warm-up weight",
         "A weight growing linearly from 0 at step 0 to 1 at step n_warmup_steps, then 1; "
         "with n_warmup_steps <= 0 (no warm-up) it is 1 throughout."),
    Task("5.2", "eqs. (60) and (68)", _CH5, "scvi_edu/posterior.py", "marginal_ll",
         "the importance-sampled marginal log-likelihood",
         "The log importance weight of each draw is log p(x | z, l) + log p(z) - log q(z | x) "
         "(+ log p(l) - log q(l | x) with the latent library, prior from module.library_prior), "
         "densities by log_normal summed over the latent dimensions; then "
         "log p(x) ~ logsumexp_k(log w_k) - log K."),
    Task("5.3", "the Bayes factor", _CH5, "scvi_edu/differential.py", "bayes_factors",
         "the posterior probabilities and the Bayes factor of differential expression",
         'mode "vanilla": proba_m1 = P(rho_a > rho_b), proba_m2 = 1 - proba_m1, proba_de = their '
         'maximum; mode "change": proba_m1 = P(|LFC| > delta) = proba_de, proba_m2 = 1 - '
         "proba_m1. bayes_factor = log(proba_m1 / proba_m2), natural log, each probability "
         "plus _EPS."),
]  # fmt: skip

# Test files that call no task (checked in a student tree by ``verify``): the tests of the
# derivations, the ledger, the toys, the exercises, the book and this tool.
INDEPENDENT_TESTS = [
    "tests/test_assignments.py",
    "tests/test_autoencoder.py",
    "tests/test_book.py",
    "tests/test_errata.py",
    "tests/test_exercises_chapter1.py",
    "tests/test_exercises_chapter2.py",
    "tests/test_ledger.py",
    "tests/test_notebook_sources.py",
]

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# TASK (?P<id>\d+\.\d+) begin[ \t]*$")
_END = "# TASK {} end"


def _stub(task: Task, indent: str, in_docstring: bool) -> list[str]:
    """The lines that replace a region: a note (unless the docstring has it) and the raise."""
    if in_docstring:
        note = [f"{task.message}: see the docstring. Graded by: {task.command}"]
    else:
        note = textwrap.wrap(
            f"{task.message}. {task.hint} Explained in {task.chapter}. Graded by: {task.command}",
            96 - len(indent),
        )
    return [f"{indent}# {line}" for line in note] + [
        f'{indent}raise NotImplementedError("{task.message}")'
    ]


def _docstring_note(lines: list[str], k: int, task: Task) -> bool:
    """Add the task's note to the docstring ending at line ``k``; False if there is none."""
    line = lines[k].rstrip()
    if not line.endswith('"""'):
        return False
    indent = line[: len(line) - len(line.lstrip())]
    closing_only = line.strip() == '"""'
    start = next((j for j in range(k - 1, -1, -1) if '"""' in lines[j]), k) if closing_only else k
    if f"**{task.message}**" in " ".join(" ".join(lines[start : k + 1]).split()):
        return True  # already noted (a student tree)
    note = [
        f"{indent}{s}"
        for s in textwrap.wrap(
            f"**{task.message}** (to implement; {task.chapter}). {task.hint}", 96 - len(indent)
        )
    ]
    if line.strip() == '"""':  # closing line of a multi-line docstring
        lines[k:k] = ["", *note]
    elif line.lstrip().startswith('"""') and line.count('"""') == 2:  # one-line docstring
        lines[k : k + 1] = [line[:-3], "", *note, f'{indent}"""']
    else:
        return False
    return True


def stub_source(
    text: str, tasks: list[Task] | None = None, keep: tuple[str, ...] = ()
) -> tuple[str, list[str]]:
    """Replace every marked region of ``text`` by its stub; return the text and the task ids.

    A region that is a whole function body (it follows the docstring) also gets the task's note
    in the docstring. Regions of the tasks in ``keep`` stay implemented. Raises ValueError on an
    unknown id or a region without its end marker.
    """
    known = {t.id: t for t in (TASKS if tasks is None else tasks)}
    lines, out, found, k = text.split("\n"), [], [], 0
    while k < len(lines):
        m = _BEGIN.match(lines[k])
        if not m:
            out.append(lines[k])
            k += 1
            continue
        task_id, indent = m["id"], m["indent"]
        if task_id not in known:
            raise ValueError(f"region '# TASK {task_id} begin' names no known task")
        end = next(
            (j for j in range(k + 1, len(lines)) if lines[j].strip() == _END.format(task_id)), None
        )
        if end is None:
            raise ValueError(f"'# TASK {task_id} begin' has no '{_END.format(task_id)}'")
        found.append(task_id)
        if task_id in keep:
            out.extend(lines[k : end + 1])
            k = end + 1
            continue
        noted = (
            bool(out)
            and task_id not in found[:-1]
            and _docstring_note(out, len(out) - 1, known[task_id])
        )
        out.append(lines[k])
        out.extend(_stub(known[task_id], indent, noted))
        out.append(lines[end])
        k = end + 1
    return "\n".join(out), found


def _tracked_files(root: Path) -> list[str]:
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise ValueError(f"{root} is not a git checkout (create copies `git ls-files`)") from err
    return [p for p in res.stdout.split("\0") if p and (root / p).is_file()]


def create(dest, root: Path = ROOT, keep: tuple[str, ...] = ()) -> Path:
    """Write a student working tree at ``dest`` (new or empty folder); return its path.

    ``keep``: ids of tasks left implemented (``verify --per-task`` grades each task alone).
    """
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty folder")
    if dest == root or root in dest.parents:
        raise ValueError(f"{dest} is inside the repository {root}")
    files = _tracked_files(root)
    by_path: dict[str, list[Task]] = {}
    for t in TASKS:
        by_path.setdefault(t.path, []).append(t)
    missing = sorted(set(by_path) - set(files))
    if missing:
        raise ValueError(f"task files not tracked in {root}: {missing}")
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel in by_path:
            text, found = stub_source((root / rel).read_text(encoding="utf-8"), by_path[rel], keep)
            lost = sorted({t.id for t in by_path[rel]} - set(found))
            if lost:
                raise ValueError(f"{rel}: no region marked for task(s) {lost}")
            (dest / rel).write_text(text, encoding="utf-8")
        else:
            shutil.copy2(root / rel, dest / rel)
    return dest


# ------------------------------------------------------------------------------- verify
def _pytest(tree: Path, args: list[str], junit: Path | None = None) -> tuple[int, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if junit is not None:
        cmd.append(f"--junitxml={junit}")
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    return res.returncode, res.stdout + res.stderr


def _outcomes(junit: Path) -> dict[str, list[tuple[str, str]]]:
    """Task id -> [(test name, failure text or "" if passed)] from a junit report."""
    result: dict[str, list[tuple[str, str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        m = re.search(r"TestTask(\d+)_(\d+)$", case.get("classname", ""))
        if not m:
            continue
        bad = [e for e in case if e.tag in ("failure", "error", "skipped")]
        text = " ".join(f"[{e.tag}] {e.get('message', '')} {e.text or ''}" for e in bad)
        result.setdefault(f"{m[1]}.{m[2]}", []).append((case.get("name"), text))
    return result


def verify(root: Path = ROOT, per_task: bool = False) -> list[str]:
    """Check the mechanism; return the problems found (empty: all good).

    1. In the repository every task's tests pass (and none is skipped).
    2. In a fresh student tree every test of every task fails, and at least one fails with the
       task's own ``NotImplementedError`` (naming its equation).
    3. In the student tree the test files that call no task (``INDEPENDENT_TESTS``) pass.
    4. With ``per_task``: in a student tree where only the task and its ``needs`` are
       implemented, ``pytest -m task_n_m`` passes (one tree and one pytest run per task).
    """
    problems = []
    if per_task:
        with tempfile.TemporaryDirectory(prefix="scvi-edu-student-") as tmp:
            for t in TASKS:
                tree = create(Path(tmp) / t.marker, root, keep=(t.id, *t.needs))
                code, out = _pytest(tree, ["-m", t.marker, "tests/test_tasks.py"])
                print(
                    f"  {t.marker} with only {(t.id, *t.needs)} implemented: "
                    f"{out.strip().splitlines()[-1]}"
                )
                if code != 0:
                    problems.append(
                        f"{t.marker} fails with only {(t.id, *t.needs)} implemented:\n{out[-2000:]}"
                    )
    with tempfile.TemporaryDirectory(prefix="scvi-edu-student-") as tmp:
        tmp = Path(tmp)
        student = create(tmp / "student", root)
        for label, tree in (("repository", root), ("student tree", student)):
            junit = tmp / f"{label.replace(' ', '_')}.xml"
            start = time.perf_counter()
            _pytest(tree, ["tests/test_tasks.py"], junit)
            print(f"{label}: task tests ran in {time.perf_counter() - start:.0f} s")
            outcomes = _outcomes(junit)
            for t in TASKS:
                tests = outcomes.get(t.id, [])
                if not tests:
                    problems.append(
                        f"{label}: task {t.id} has no tests (class TestTask"
                        f"{t.id.replace('.', '_')} in tests/test_tasks.py)"
                    )
                    continue
                failed = [(name, text) for name, text in tests if text]
                if tree == root and failed:
                    problems += [
                        f"repository: {name} ({t.marker}) fails: {text[:300]}"
                        for name, text in failed
                    ]
                if tree == student:
                    passed = [name for name, text in tests if not text]
                    problems += [
                        f"student tree: {name} ({t.marker}) passes without the task implemented"
                        for name in passed
                    ]
                    if not any(t.message in text for _, text in failed):
                        problems.append(
                            f"student tree: no test of {t.marker} fails with {t.message!r}"
                        )
                print(f"  {t.marker}: {len(tests)} tests, {len(failed)} failed")
        start = time.perf_counter()
        code, out = _pytest(student, INDEPENDENT_TESTS)
        print(
            f"student tree: the tests independent of the tasks ({len(INDEPENDENT_TESTS)} files) "
            f"ran in {time.perf_counter() - start:.0f} s: {out.strip().splitlines()[-1]}"
        )
        if code != 0:
            problems.append(f"student tree: the task-independent tests fail:\n{out[-3000:]}")
    return problems


# ---------------------------------------------------------------------------------- CLI
def _table() -> str:
    rows = [("task", "eq.", "file", "function", "needs", "graded by")]
    rows += [
        (t.id, t.equation, t.path, t.function, ",".join(t.needs) or "-", t.command) for t in TASKS
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scvi_edu.assignments", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the tasks and the pytest command that grades each")
    p_create = sub.add_parser("create", help="write a student working tree")
    p_create.add_argument("dest")
    p_verify = sub.add_parser("verify", help="check the mechanism (CI)")
    p_verify.add_argument(
        "--per-task",
        action="store_true",
        help="also grade each task in a tree where only it (and its needs) is "
        "implemented (one pytest run per task)",
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        print(_table())
        print("\nEach task is a region '# TASK n.m begin' ... '# TASK n.m end' of the file;")
        print("in this repository those regions are the solutions.")
        return 0
    if args.command == "create":
        try:
            dest = create(args.dest)
        except ValueError as err:
            parser.error(str(err))
        print(f"student tree written to {dest}: {len(TASKS)} tasks to implement")
        print("  cd into it, `python -m scvi_edu.assignments list`, then e.g. `pytest -m task_3_2`")
        return 0
    problems = verify(per_task=args.per_task)
    for p in problems:
        print("PROBLEM:", p)
    print("assignments verified" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
