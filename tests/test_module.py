"""Tests of scvi_edu.module.VAE and scvi_edu.nn against independent references.

The central test recomputes the whole ELBO of eq. (69), corrected, by hand in float64 numpy:
the encoder and decoder forward passes from the module's weights, the NB log-pmf from
scipy.stats.nbinom, the zero inflation mixed in numpy, the KLs from the closed form (63) in
numpy, with the same (z, l) samples the module drew.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit

from scvi_edu.module import VAE, LossOutput
from scvi_edu.nn import Encoder, FCLayers

N_GENES, N_LATENT, N_HIDDEN = 6, 2, 4
PRIOR_MEANS = np.array([3.0, 3.6, 2.7])
PRIOR_VARS = np.array([0.4, 0.25, 0.9])


def make_counts(n_cells=40, n_genes=N_GENES, seed=0) -> np.ndarray:
    """NB counts with zeros, every cell with at least one count."""
    rng = np.random.default_rng(seed)
    mu = rng.gamma(2.0, 3.0, size=(n_cells, n_genes))
    x = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(np.float64)
    x[x.sum(1) == 0, 0] = 1.0
    return x


def make_vae(seed=0, **kw) -> VAE:
    """A tiny VAE with randomised BatchNorm statistics (so BatchNorm is not the identity)."""
    torch.manual_seed(seed)
    n_batch = kw.get("n_batch", 0)
    if not kw.get("use_observed_lib_size", True):
        kw.setdefault("library_log_means", PRIOR_MEANS[: max(1, n_batch)])
        kw.setdefault("library_log_vars", PRIOR_VARS[: max(1, n_batch)])
    kw = dict(n_hidden=N_HIDDEN, n_latent=N_LATENT, **kw)
    vae = VAE(N_GENES, **kw)
    g = torch.Generator().manual_seed(seed + 100)
    for m in vae.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return vae.eval()


# --------------------------------------------------------------------- hand computation
def _np(p: torch.Tensor) -> np.ndarray:
    return p.detach().cpu().double().numpy()


def np_fclayers(fc: FCLayers, h: np.ndarray, s: np.ndarray | None) -> np.ndarray:
    """Linear -> BatchNorm (eval: running stats, eps=1e-3) -> ReLU per layer; s into each."""
    for layer in fc.fc_layers:
        lin, bn = layer[0], layer[1]
        if s is not None:
            h = np.concatenate([h, s], axis=1)
        h = h @ _np(lin.weight).T + _np(lin.bias)
        h = (h - _np(bn.running_mean)) / np.sqrt(_np(bn.running_var) + 1e-3)
        h = h * _np(bn.weight) + _np(bn.bias)
        h = np.maximum(h, 0.0)
    return h


def np_encoder(enc: Encoder, x: np.ndarray, s: np.ndarray | None):
    h = np_fclayers(enc.encoder, x, s)
    loc = h @ _np(enc.mean_encoder.weight).T + _np(enc.mean_encoder.bias)
    v = h @ _np(enc.var_encoder.weight).T + _np(enc.var_encoder.bias)
    return loc, np.sqrt(np.logaddexp(0.0, v) + 1e-4)  # softplus variance + 1e-4


def np_kl_normal(m1, s1, m2, s2):
    """Closed form of KL(N(m1, s1^2) || N(m2, s2^2)), derived independently of eq. (63)."""
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def onehot(idx, n):
    return np.eye(n)[idx] if n > 1 else None


def hand_elbo(vae: VAE, x: np.ndarray, batch: np.ndarray, y: np.ndarray, inf: dict, kl_weight):
    """Everything of eq. (69), corrected, in float64 numpy; (z, library) taken from ``inf``."""
    s = onehot(batch, vae.n_batch)
    x_enc = np.log1p(x) if vae.log_variational else x
    s_enc = s if vae.encode_covariates else None
    qz_loc, qz_scale = np_encoder(vae.z_encoder, x_enc, s_enc)
    out = dict(qz_loc=qz_loc, qz_scale=qz_scale)
    if vae.use_observed_lib_size:
        out["ql_loc"] = out["ql_scale"] = None
    else:
        out["ql_loc"], out["ql_scale"] = np_encoder(vae.l_encoder, x_enc, s_enc)

    z = _np(inf["z"]).reshape(-1, *qz_loc.shape)  # (K, n, d)
    library = _np(inf["library"]).reshape(-1, x.shape[0], 1)  # (K, n, 1), log l
    dec = vae.decoder
    log_px = []
    for zk, lk in zip(z, library, strict=True):
        h = np_fclayers(dec.px_decoder, zk, s)
        o = h @ _np(dec.px_scale_decoder[0].weight).T + _np(dec.px_scale_decoder[0].bias)
        rho = np.exp(o) / np.exp(o).sum(axis=1, keepdims=True)  # softmax, rows sum to 1
        mu = np.exp(lk) * rho  # mu = l rho, eq. (56)
        zi = h @ _np(dec.px_dropout_decoder.weight).T + _np(dec.px_dropout_decoder.bias)
        if vae.dispersion == "gene":
            theta = np.broadcast_to(np.exp(_np(vae.px_r)), mu.shape)
        elif vae.dispersion == "gene-batch":
            theta = np.exp(_np(vae.px_r)[:, batch].T)
        elif vae.dispersion == "gene-label":
            theta = np.exp(_np(vae.px_r)[:, y].T)
        else:
            theta = np.exp(h @ _np(dec.px_r_decoder.weight).T + _np(dec.px_r_decoder.bias))
        nb = stats.nbinom.logpmf(x, n=theta, p=theta / (theta + mu))
        if vae.gene_likelihood == "poisson":
            lp = stats.poisson.logpmf(x, mu)
        elif vae.gene_likelihood == "nb":
            lp = nb
        else:
            pi = expit(zi)  # P(technical zero)
            lp = np.where(x == 0, np.log(pi + (1 - pi) * np.exp(nb)), np.log1p(-pi) + nb)
        log_px.append(lp.sum(axis=1))
        out.setdefault("rho", rho)
    out["rec"] = -np.mean(log_px, axis=0)  # eq. (68): average over the K samples
    out["kl_z"] = np_kl_normal(qz_loc, qz_scale, 0.0, 1.0).sum(axis=1)
    if vae.use_observed_lib_size:
        out["kl_l"] = np.zeros(x.shape[0])
    else:
        b = batch if vae.n_batch > 1 else np.zeros_like(batch)
        m_b = _np(vae.library_log_means)[b][:, None]
        sd_b = np.sqrt(_np(vae.library_log_vars)[b])[:, None]  # the prior holds VARIANCES
        out["kl_l"] = np_kl_normal(out["ql_loc"], out["ql_scale"], m_b, sd_b).sum(axis=1)
    out["elbo"] = -out["rec"] - out["kl_z"] - out["kl_l"]
    out["loss"] = np.mean(out["rec"] + kl_weight * out["kl_z"] + out["kl_l"])
    return out


CONFIGS = [
    dict(gene_likelihood="zinb"),
    dict(gene_likelihood="zinb", use_observed_lib_size=False),
    dict(gene_likelihood="nb", n_batch=3, dispersion="gene-batch"),
    dict(gene_likelihood="poisson", n_batch=3, use_observed_lib_size=False),
    dict(
        gene_likelihood="zinb",
        n_batch=3,
        n_layers=2,
        encode_covariates=True,
        use_observed_lib_size=False,
        dispersion="gene-cell",
    ),  # fmt: skip
    dict(gene_likelihood="nb", n_labels=2, dispersion="gene-label", log_variational=False),
]


def _run(vae, x, batch, y, dtype, n_samples=1, kl_weight=1.0, seed=7):
    xt = torch.as_tensor(x, dtype=dtype)
    bt, yt = torch.as_tensor(batch)[:, None], torch.as_tensor(y)  # (n, 1) and (n,) both accepted
    torch.manual_seed(seed)
    inf = vae.inference(xt, bt, n_samples=n_samples)
    gen = vae.generative(inf["z"], inf["library"], bt, yt)
    return inf, gen, vae.loss(xt, inf, gen, bt, kl_weight=kl_weight)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_loss_equals_hand_computed_elbo(cfg, dtype):
    """The ELBO (60)/(69), corrected, against a float64 numpy/scipy computation."""
    vae = make_vae(**cfg).to(dtype)
    x = make_counts()
    rng = np.random.default_rng(1)
    batch = rng.integers(0, max(1, vae.n_batch), size=x.shape[0])
    y = rng.integers(0, max(1, vae.n_labels), size=x.shape[0])
    kl_weight = 0.3
    n_samples = 3 if "n_layers" in cfg else 1
    inf, gen, out = _run(vae, x, batch, y, dtype, n_samples=n_samples, kl_weight=kl_weight)
    ref = hand_elbo(vae, x, batch, y, inf, kl_weight)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)

    def close(a, b, msg):
        np.testing.assert_allclose(_np(a), b, err_msg=msg, **tol)

    close(inf["qz_loc"], ref["qz_loc"], "q(z|x) mean (NN1, eq. (61)): encoder forward pass")
    close(inf["qz_scale"], ref["qz_scale"], "q(z|x) sd (NN2, eq. (61)): sqrt(softplus + 1e-4)")
    if ref["ql_loc"] is not None:
        close(inf["ql_loc"], ref["ql_loc"], "q(l|x) mean (NN3, eq. (61))")
        close(inf["ql_scale"], ref["ql_scale"], "q(l|x) sd (NN4, eq. (61))")
    else:
        assert inf["ql_loc"] is None and inf["ql_scale"] is None
        lib = np.log(x.sum(axis=1, keepdims=True))
        lib = np.broadcast_to(lib, (n_samples,) + lib.shape)
        close(inf["library"].reshape(lib.shape), lib, "observed library must be log(sum_g x_ng)")
    close(gen["px_scale"].reshape(-1, *x.shape)[0], ref["rho"],
          "px_scale must be softmax exp(o_g)/sum_j exp(o_j) "
          "(Fig. 3 drops the exp; ledger (Fig. 3))")  # fmt: skip
    close(out.reconstruction_loss, ref["rec"],
          "reconstruction term -log p(x|z,l) of eq. (58)/(59) corrected: NB with "
          "x log(mu/(theta+mu)) (not x log(x/(theta+mu))), P(0) = pi + (1-pi) NB(0), "
          "averaged over samples (eq. (68))")  # fmt: skip
    close(out.kl_z, ref["kl_z"], "KL(q(z|x) || N(0,I)), eq. (64)")
    close(out.kl_l, ref["kl_l"],
          "KL(q(l|x) || p(l|s)), eq. (66): the prior's library_log_vars are variances")  # fmt: skip
    close(out.elbo, ref["elbo"],
          "elbo = log p(x|z,l) - KL_z - KL_l: KL must be subtracted "
          "(eq. (69) adds it; ledger (69)); and KL of independent q's is a sum, not the "
          "product of eq. (67)")  # fmt: skip
    close(out.loss, ref["loss"],
          "loss = mean(rec + kl_weight*kl_z + kl_l) = -ELBO at kl_weight=1 (eq. (70) minimised): "
          "the KL terms are added to the LOSS, i.e. subtracted from the ELBO (eq. (69) adds "
          "them to the ELBO; ledger (69))")  # fmt: skip


def test_samples_are_reparameterised_standard_normal_noise():
    """eq. (61): z = loc + scale * eps with eps ~ N(0, I) (and likewise log l)."""
    vae = make_vae(use_observed_lib_size=False)
    x = make_counts(n_cells=2000, seed=3)
    torch.manual_seed(0)
    inf = vae.inference(torch.as_tensor(x, dtype=torch.float32), None)
    for key, loc, scale in [("z", "qz_loc", "qz_scale"), ("library", "ql_loc", "ql_scale")]:
        eps = _np((inf[key] - inf[loc]) / inf[scale]).ravel()
        assert stats.kstest(eps, "norm").pvalue > 1e-3, f"{key} is not loc + scale * N(0, 1)"


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    "dispersion,likelihood,observed",
    list(
        itertools.product(
            ["gene", "gene-batch", "gene-label", "gene-cell"], ["zinb", "nb", "poisson"], [1, 0]
        )
    ),
)
def test_shapes(dispersion, likelihood, observed):
    n, k = 9, 3
    vae = make_vae(
        n_batch=3, n_labels=2, dispersion=dispersion, gene_likelihood=likelihood,
        use_observed_lib_size=bool(observed),
    )  # fmt: skip
    x = torch.as_tensor(make_counts(n_cells=n), dtype=torch.float32)
    b, y = torch.arange(n) % 3, torch.arange(n) % 2
    out = vae(x, b, y)
    assert isinstance(out, LossOutput) and out.loss.shape == ()
    for v in (out.reconstruction_loss, out.kl_z, out.kl_l, out.elbo):
        assert v.shape == (n,)
    for ns, lead in [(1, ()), (k, (k,))]:
        inf = vae.inference(x, b, n_samples=ns)
        assert inf["z"].shape == lead + (n, N_LATENT)
        assert inf["library"].shape == lead + (n, 1)
        assert inf["qz_loc"].shape == inf["qz_scale"].shape == (n, N_LATENT)
        if observed:
            assert inf["ql_loc"] is None and inf["ql_scale"] is None
        else:
            assert inf["ql_loc"].shape == inf["ql_scale"].shape == (n, 1)
        gen = vae.generative(inf["z"], inf["library"], b, y)
        for key in ("px_scale", "px_rate", "px_r", "px_dropout"):
            assert gen[key].shape == lead + (n, N_GENES), key
        assert (gen["px_r"] > 0).all(), "px_r is theta, the (positive) inverse dispersion"
        assert vae.get_reconstruction_log_prob(x, gen).shape == lead + (n,)
        assert vae.loss(x, inf, gen, b).reconstruction_loss.shape == (n,)


def test_softmax_rows_sum_to_one_and_rate_is_library_times_scale():
    vae = make_vae(n_batch=3)
    x = torch.as_tensor(make_counts(), dtype=torch.float32)
    b = torch.arange(x.shape[0]) % 3
    inf = vae.inference(x, b)
    gen = vae.generative(inf["z"], inf["library"], b)
    rows = gen["px_scale"].sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5), (
        "px_scale rows must sum to 1: softmax = exp(o_g)/sum_j exp(o_j) "
        "(Fig. 3 drops the exp; ledger (Fig. 3))"
    )
    assert (gen["px_scale"] > 0).all()
    expected = x.sum(1, keepdim=True) * gen["px_scale"]
    assert torch.allclose(gen["px_rate"], expected, rtol=1e-5), "mu = l * rho (eq. (56))"


def test_library_prior_from_data_is_per_batch_mean_and_variance():
    """eq. (62) corrected: sigma_b^2 = mean over batch b of the SQUARED deviations of log L."""
    from scvi_edu.data import library_size_prior

    x = make_counts(n_cells=60, seed=4)
    b = np.arange(60) % 3
    means, variances = library_size_prior(x, b, 3)
    log_l = np.log(x.sum(axis=1))
    ref_m = np.array([np.mean(log_l[b == k]) for k in range(3)])
    ref_v = np.array([np.mean((log_l[b == k] - ref_m[k]) ** 2) for k in range(3)])
    np.testing.assert_allclose(means, ref_m, rtol=1e-12, err_msg="prior mean mu_b, eq. (62)")
    np.testing.assert_allclose(
        variances, ref_v, rtol=1e-10,
        err_msg="prior variance sigma_b^2 must average the squared deviations; (62) squares "
        "their sum, which is 0 (ledger (62))",
    )  # fmt: skip
    vae = make_vae(n_batch=3, use_observed_lib_size=False,
                   library_log_means=means, library_log_vars=variances).double()  # fmt: skip
    _, _, out = _run(vae, x, b, b, torch.float64)
    assert torch.isfinite(out.kl_l).all() and (out.kl_l > 0).all(), "KL_l of eq. (66)"


# ---------------------------------------------------------------------- the ELBO terms
def test_zero_inflation_direction():
    """Large zi_logits (= -f_h of (55)) mean more technical zeros: P(x=0) up, P(x>0) down."""
    vae = make_vae(gene_likelihood="zinb")
    x = torch.as_tensor(make_counts(), dtype=torch.float32)
    torch.manual_seed(0)
    inf = vae.inference(x, None)
    lp = []
    for shift in (-5.0, 0.0, 5.0):
        with torch.no_grad():
            vae.decoder.px_dropout_decoder.bias.add_(shift)
            gen = vae.generative(inf["z"], inf["library"], None)
            vae.decoder.px_dropout_decoder.bias.sub_(shift)
            pi = torch.sigmoid(gen["px_dropout"])
            mu, theta = gen["px_rate"], gen["px_r"]
            lp.append(
                (
                    vae.get_reconstruction_log_prob(torch.zeros_like(x), gen),
                    pi.mean().item(),
                    (pi + (1 - pi) * (theta / (theta + mu)) ** theta).log().sum(-1),
                )
            )
    zeros = [a for a, _, _ in lp]
    assert (zeros[0] < zeros[1]).all() and (zeros[1] < zeros[2]).all(), (
        "larger zi_logits must give more zeros: sigmoid(zi_logits) = P(technical zero) "
        "(eq. (58) swaps the mixture weights; ledger (58))"
    )
    for a, _, ref in lp:
        assert torch.allclose(a, ref, rtol=1e-4), "P(0) = pi + (1 - pi) NB(0), eq. (58)"


def test_kl_weight_scales_only_kl_z():
    vae = make_vae(use_observed_lib_size=False).double()
    x = make_counts()
    b = np.zeros(x.shape[0], dtype=int)
    outs = [_run(vae, x, b, b, torch.float64, kl_weight=w)[2]
            for w in (0.0, 0.5, 1.0)]  # fmt: skip
    for o in outs[1:]:
        for key in ("reconstruction_loss", "kl_z", "kl_l", "elbo"):
            assert torch.allclose(getattr(o, key), getattr(outs[0], key))
    assert (outs[0].kl_l > 0).all()
    assert torch.allclose(outs[0].loss, (outs[0].reconstruction_loss + outs[0].kl_l).mean())
    for w, o in zip((0.5, 1.0), outs[1:], strict=True):
        assert torch.allclose(o.loss - outs[0].loss, w * outs[0].kl_z.mean(), rtol=1e-5), (
            "kl_weight must multiply kl_z only (KL warm-up of eq. (70))"
        )
    assert torch.allclose(outs[2].loss, -outs[2].elbo.mean()), "loss at kl_weight=1 is -ELBO"


def test_kl_terms_nonnegative_and_elbo_negative_on_counts():
    vae = make_vae(use_observed_lib_size=False, n_batch=3)
    x = make_counts()
    b = np.arange(x.shape[0]) % 3
    _, _, out = _run(vae, x, b, b, torch.float32)
    assert (out.kl_z >= 0).all() and (out.kl_l >= 0).all(), "KL >= 0 (eq. (63))"
    assert (out.reconstruction_loss > 0).all(), "-log of a pmf is >= 0"
    assert (out.elbo < 0).all(), "the ELBO of count data is a log-probability bound: < 0"


def test_loss_decreases_with_adam():
    torch.manual_seed(0)
    x = torch.as_tensor(make_counts(n_cells=64, seed=5), dtype=torch.float32)
    vae = VAE(N_GENES, n_hidden=16, n_latent=N_LATENT, dropout_rate=0.0)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    vae.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        before = vae(x, None).loss.item()
    vae.train()
    for _ in range(60):
        opt.zero_grad()
        loss = vae(x, None).loss
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    vae.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        after = vae(x, None).loss.item()
    assert after < before - 1.0, f"Adam did not reduce the loss: {before:.3f} -> {after:.3f}"


# ----------------------------------------------------------------------- architecture
def test_architecture_follows_scvi_tools():
    vae = make_vae(n_batch=3, n_layers=2)
    for m in vae.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            assert m.momentum == 0.01 and m.eps == 1e-3
    enc, dec = vae.z_encoder.encoder.fc_layers, vae.decoder.px_decoder.fc_layers
    assert enc[0][0].in_features == N_GENES, "the encoder gets no batch unless encode_covariates"
    assert dec[0][0].in_features == N_LATENT + 3, "the decoder gets z and the batch one-hot"
    assert dec[1][0].in_features == N_HIDDEN + 3, "the batch is injected into every layer"
    assert [type(m).__name__ for m in dec[0]] == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    vae_c = make_vae(n_batch=3, encode_covariates=True, use_observed_lib_size=False)
    assert vae_c.z_encoder.encoder.fc_layers[0][0].in_features == N_GENES + 3
    assert vae_c.l_encoder.encoder.fc_layers[0][0].in_features == N_GENES + 3


def test_encoder_variance_does_not_overflow():
    """softplus variance: a huge pre-activation gives a finite scale (exp would give inf)."""
    enc = Encoder(3, 2, n_hidden=4).eval()
    with torch.no_grad():
        enc.var_encoder.bias.fill_(500.0)
    loc, scale = enc(torch.rand(5, 3))
    assert torch.isfinite(scale).all() and torch.allclose(scale, torch.full_like(scale, 500**0.5),
                                                          rtol=1e-2)  # fmt: skip
    with torch.no_grad():
        enc.var_encoder.bias.fill_(-500.0)
    _, scale = enc(torch.rand(5, 3))
    assert torch.allclose(scale, torch.full_like(scale, 1e-2)), "scale >= sqrt(1e-4)"


# -------------------------------------------------------------------------- bad input
def test_latent_library_without_prior_raises():
    with pytest.raises(ValueError, match="library_log_means"):
        VAE(N_GENES, use_observed_lib_size=False)
    with pytest.raises(ValueError, match="shape"):
        VAE(N_GENES, n_batch=3, use_observed_lib_size=False,
            library_log_means=[1.0, 2.0], library_log_vars=[1.0, 1.0])  # fmt: skip
    with pytest.raises(ValueError, match="> 0"):
        VAE(N_GENES, use_observed_lib_size=False, library_log_means=[1.0], library_log_vars=[0])


@pytest.mark.parametrize(
    "kw",
    [
        dict(dispersion="gene-typo"),
        dict(gene_likelihood="gaussian"),
        dict(dispersion="gene-batch"),
        dict(dispersion="gene-label"),
    ],  # fmt: skip
)
def test_bad_options_raise(kw):
    with pytest.raises(ValueError):
        VAE(N_GENES, **kw)


def test_bad_inputs_raise():
    vae = make_vae(n_batch=2)
    x = torch.as_tensor(make_counts(n_cells=5), dtype=torch.float32)
    b = torch.tensor([0, 1, 0, 1, 0])
    assert torch.equal(vae.inference(x, b)["qz_loc"], vae.inference(x, b[:, None])["qz_loc"])
    with pytest.raises(ValueError, match="batch_index"):
        vae.inference(x, torch.tensor([0, 1, 2, 1, 0]))
    with pytest.raises(ValueError, match="batch_index"):
        vae.inference(x, b[:3])
    with pytest.raises(ValueError, match="batch_index"):
        vae.inference(x, None)
    with pytest.raises(ValueError, match="negative"):
        vae.inference(x - 100, b)
    with pytest.raises(ValueError, match="NaN"):
        vae.inference(x * float("nan"), b)
    x0 = x.clone()
    x0[2] = 0
    with pytest.raises(ValueError, match="zero total counts"):
        vae.inference(x0, b)
    vae.train()
    with pytest.raises(ValueError, match="at least 2 cells"):
        vae(x[:1], b[:1])


def test_generative_guards_keep_extreme_parameters_finite():
    """theta = exp(px_r) is clamped to [1e-6, 1e8] and the log library to <= 30 (no inf/NaN)."""
    vae = make_vae(gene_likelihood="zinb")
    x = torch.as_tensor(make_counts(n_cells=8), dtype=torch.float32)
    inf = vae.inference(x, None)
    with torch.no_grad():
        for fill, bound in ((200.0, 1e8), (-200.0, 1e-6)):
            vae.px_r.fill_(fill)
            gen = vae.generative(inf["z"], inf["library"] + 500.0, None)
            assert torch.allclose(gen["px_r"], torch.full_like(gen["px_r"], bound), rtol=1e-5)
            assert torch.isfinite(gen["px_rate"]).all()
            assert torch.isfinite(vae.get_reconstruction_log_prob(x, gen)).all()
