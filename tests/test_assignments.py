"""The assignments tool (``python -m scvi_edu.assignments``) and its graders.

These tests call no task, so they pass in a student tree too (``INDEPENDENT_TESTS``): the graders
of ``tests/test_tasks.py`` are fed wrong answers written here, and must name the mistake.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import test_tasks as graders  # tests/ is on sys.path
import torch
import torch.nn.functional as F
from _grading import failure

from scvi_edu import assignments
from scvi_edu.assignments import TASKS, create, stub_source
from scvi_edu.module import VAE, LossOutput
from scvi_edu.nn import DecoderSCVI

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------- the task registry
def test_every_task_has_a_region_a_grader_class_and_a_registered_marker():
    registered = set(re.findall(r'"(task_\d+_\d+):', (ROOT / "pyproject.toml").read_text()))
    assert len(TASKS) >= 10
    assert len({t.id for t in TASKS}) == len(TASKS)
    for t in TASKS:
        text = (ROOT / t.path).read_text()
        assert f"# TASK {t.id} begin" in text and f"# TASK {t.id} end" in text, t.id
        cls = getattr(graders, f"TestTask{t.id.replace('.', '_')}")
        assert cls.pytestmark.name == t.marker
        assert t.marker in registered, f"{t.marker} is not in pyproject.toml's markers"
        assert set(t.needs) <= {u.id for u in TASKS}


def test_list_prints_every_task_with_its_command(capsys):
    assert assignments.main(["list"]) == 0
    out = capsys.readouterr().out
    for t in TASKS:
        line = next(row for row in out.splitlines() if row.startswith(t.id + " "))
        for field in (t.equation, t.path, t.function, t.command):
            assert field in line, (t.id, field, line)


# ------------------------------------------------------------------------------- stubbing
SOURCE = '''def f(x):
    """Doubles x."""
    # TASK 3.2 begin
    return 2 * x
    # TASK 3.2 end


def g(x):
    y = x + 1
    # TASK 3.2 begin
    y = y * 2
    # TASK 3.2 end
    return y
'''


def test_stub_source_replaces_regions_and_notes_the_docstring():
    text, found = stub_source(SOURCE)
    assert found == ["3.2", "3.2"]
    assert "return 2 * x" not in text and "y = y * 2" not in text
    task = next(t for t in TASKS if t.id == "3.2")
    assert text.count(f'raise NotImplementedError("{task.message}")') == 2
    assert "# TASK 3.2 begin" in text and "# TASK 3.2 end" in text  # markers kept
    tree = ast.parse(text)
    doc = " ".join(ast.get_docstring(tree.body[0]).split())
    assert doc.startswith("Doubles x.") and task.message in doc and "chapter 3" in doc
    ns: dict = {}
    exec(compile(text, "stub", "exec"), ns)
    for fn in (ns["f"], ns["g"]):
        with pytest.raises(NotImplementedError, match=r"Task 3\.2 — eq\. \(58\)"):
            fn(1)
    assert stub_source(text)[0] == text  # a student tree stubs to itself


def test_stub_source_rejects_bad_regions():
    with pytest.raises(ValueError, match="no known task"):
        stub_source("    # TASK 9.9 begin\n    pass\n    # TASK 9.9 end\n")
    with pytest.raises(ValueError, match="has no '# TASK 3.2 end'"):
        stub_source("    # TASK 3.2 begin\n    pass\n")


def test_the_package_regions_stub_to_valid_python():
    for path in sorted({t.path for t in TASKS}):
        text, found = stub_source((ROOT / path).read_text())
        ast.parse(text)
        assert {t.id for t in TASKS if t.path == path} == set(found), path


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_create_copies_tracked_files_and_stubs_the_tasks(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text(SOURCE)
    (repo / "README.md").write_text("hello\n")
    (repo / "untracked.txt").write_text("not copied\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "pkg/mod.py", "README.md")
    task = next(t for t in TASKS if t.id == "3.2")
    monkeypatch.setattr(
        assignments, "TASKS", [assignments.Task(**{**task.__dict__, "path": "pkg/mod.py"})]
    )
    dest = create(tmp_path / "student", root=repo)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "README.md",
        "pkg/mod.py",
    ]
    assert (dest / "README.md").read_text() == "hello\n"
    assert "NotImplementedError" in (dest / "pkg" / "mod.py").read_text()
    assert (repo / "pkg" / "mod.py").read_text() == SOURCE  # the repository is untouched
    with pytest.raises(ValueError, match="not an empty folder"):
        create(dest, root=repo)
    with pytest.raises(ValueError, match="inside the repository"):
        create(repo / "sub", root=repo)
    with pytest.raises(ValueError, match="not a git checkout"):
        create(tmp_path / "other", root=tmp_path / "student")


def test_create_from_this_checkout_gives_a_working_student_tree(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (a student tree): create needs `git ls-files`")
    dest = create(tmp_path / "student")
    spec = importlib.util.spec_from_file_location(
        "student_distributions", dest / "scvi_edu" / "distributions.py"
    )
    student = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(student)  # imports only torch
    t = torch.ones(2)
    with pytest.raises(NotImplementedError, match=r"^Task 3\.2 — eq\. \(58\): "):
        student.log_zinb_positive(t, t, t, t)
    assert student.log_gamma_ratio(t, t).shape == (2,)  # the rest of the file is intact
    assert (dest / "tests" / "test_tasks.py").exists()


# ------------------------------------------------- the graders name the tutorial's mistakes
def _nb(x, mu, theta, x_log_x=False):
    log_mu = torch.xlogy(x, x) / x.clamp(min=1e-300) if x_log_x else torch.log(mu)
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + theta * torch.log(theta / (theta + mu))
        + x * (log_mu - torch.log(theta + mu))
    )


def _zinb(x, mu, theta, zi, flip=False, x_log_x=False):
    zi = -zi if flip else zi
    nb0 = theta * torch.log(theta / (theta + mu))
    zero = F.softplus(nb0 - zi) - F.softplus(-zi)
    return torch.where(x > 0, -F.softplus(zi) + _nb(x, mu, theta, x_log_x), zero)


def test_graders_accept_independent_right_answers():
    schedule = lambda s, n: 1.0 if n <= 0 else min(1.0, s / n)  # noqa: E731
    for grader, answer in [
        (graders.check_log_nb_positive, _nb),
        (graders.check_log_zinb_positive, _zinb),
        (graders.check_kl_weight_schedule, schedule),
    ]:
        problem = failure(grader, answer)
        assert problem is None, problem


@pytest.mark.parametrize(
    "wrong, mistake",
    [
        (lambda x, m, t, z: _zinb(x, m, t, z, flip=True), "weights of the zero case swapped"),
        (lambda x, m, t, z: _zinb(x, m, t, z, x_log_x=True), "x log(x / (theta + mu))"),
    ],
)
def test_zinb_grader_names_the_tutorials_mistakes(wrong, mistake):
    with pytest.raises(AssertionError, match=r"Task 3\.2, eq\. \(58\)") as err:
        graders.check_log_zinb_positive(wrong)
    assert mistake in str(err.value)


def test_nb_and_poisson_graders_name_mistakes():
    with pytest.raises(AssertionError, match="x log"):
        graders.check_log_nb_positive(lambda x, m, t: _nb(x, m, t, x_log_x=True))
    with pytest.raises(AssertionError, match="log x! term"):
        graders.check_log_poisson(lambda x, r: x * torch.log(r) - r)


def test_kl_grader_names_mistakes():
    def kl(m1, s1, m2, s2):
        return torch.log(s2 / s1) - 0.5 + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2)

    graders.check_kl_normal(kl)
    with pytest.raises(AssertionError, match="wrong sign"):
        graders.check_kl_normal(lambda *a: -kl(*a))
    with pytest.raises(AssertionError, match="variances"):
        graders.check_kl_normal(lambda m1, s1, m2, s2: kl(m1, s1.sqrt(), m2, s2.sqrt()))


class _NoExpDecoder(DecoderSCVI):
    """Fig. 3 as printed: rho_g = o_g / sum_j exp(o_j)."""

    def forward(self, dispersion, z, library, cat=None):
        h = self.px_decoder(z, cat)
        o = self.px_scale_decoder(h)
        px_scale = o / torch.exp(o).sum(dim=-1, keepdim=True)
        return px_scale, None, torch.exp(library) * px_scale, self.px_dropout_decoder(h)


def test_softmax_grader_names_the_missing_exp():
    torch.manual_seed(0)
    decoder = _NoExpDecoder(3, 6, n_hidden=8).double().eval()
    with pytest.raises(AssertionError, match="Fig. 3, the exp of the numerator dropped"):
        graders.check_softmax_decoder(decoder)


def _kl(loc, scale, loc2, scale2):
    d = torch.distributions
    return d.kl_divergence(d.Normal(loc, scale), d.Normal(loc2, scale2)).sum(-1)


class _ELBOVAE(VAE):
    """VAE.loss written here (no task code), with the KL added when ``kl_sign`` is +1."""

    kl_sign = -1.0

    def loss(self, x, inference_outputs, generative_outputs, batch_index, kl_weight=1.0):
        rec = -self.get_reconstruction_log_prob(x, generative_outputs)
        i = inference_outputs
        kl_z = _kl(i["qz_loc"], i["qz_scale"], 0.0, 1.0)
        loc, scale = self.library_means_scale()
        kl_l = _kl(i["ql_loc"], i["ql_scale"], loc, scale)
        loss = torch.mean(rec + kl_weight * kl_z + kl_l)
        return LossOutput(loss, rec, kl_z, kl_l, -rec + self.kl_sign * (kl_z + kl_l))

    def library_means_scale(self):
        return self.library_log_means, torch.sqrt(self.library_log_vars)


class _KLAddedVAE(_ELBOVAE):
    kl_sign = 1.0


def _factory(cls):
    def make(**kw):
        torch.manual_seed(0)
        return cls(6, n_hidden=8, n_latent=2, **kw).double().eval()

    return make


def test_elbo_grader_names_the_added_kl():
    graders.check_elbo(_factory(_ELBOVAE))
    with pytest.raises(AssertionError, match=r"the tutorial's \(69\) adds them"):
        graders.check_elbo(_factory(_KLAddedVAE))


def test_library_prior_grader_names_the_zero_variance():
    def tutorial_62(X, batch, n_batch):
        log_l = np.log(np.asarray(X.sum(axis=1)).reshape(-1))
        means = np.array([log_l[batch == b].mean() for b in range(n_batch)])
        if any((batch == b).sum() == 0 for b in range(n_batch)):
            raise ValueError("empty batch")
        var = np.array([(log_l[batch == b] - means[b]).sum() ** 2 for b in range(n_batch)])
        return means, var / np.bincount(batch, minlength=n_batch)

    with pytest.raises(AssertionError, match="summed\\* deviations, identically 0"):
        graders.check_library_size_prior(tutorial_62)


def test_warmup_and_bayes_factor_graders_name_mistakes():
    with pytest.raises(AssertionError, match="not capped at 1"):
        graders.check_kl_weight_schedule(lambda s, n: 1.0 if n <= 0 else s / n)

    def bf(s1, s2, mode="vanilla", delta=0.25, base=math.e):
        lfc = np.abs(np.log2(s1) - np.log2(s2))
        p1 = np.mean(s1 > s2, 0) if mode == "vanilla" else np.mean(lfc > delta, 0)
        p_de = np.maximum(p1, 1 - p1) if mode == "vanilla" else p1
        b = (np.log(p1 + 1e-8) - np.log(1 - p1 + 1e-8)) / np.log(base)
        return {"proba_m1": p1, "proba_m2": 1 - p1, "proba_de": p_de, "bayes_factor": b}

    graders.check_bayes_factors(bf)
    with pytest.raises(AssertionError, match="base 10"):
        graders.check_bayes_factors(lambda *a, **k: bf(*a, **k, base=10.0))
