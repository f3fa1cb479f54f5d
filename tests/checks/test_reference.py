"""The float64 oracle, checked against independent means: hand-computed tiny cases, central
finite differences, SciPy, and torch.optim (for the torch-convention optimizers).

Tolerances: closed forms and SciPy agree to float64 rounding (1e-12 relative leaves ~10^4
headroom); central differences with h = 1e-6 have truncation error O(h^2) ~ 1e-12 and
rounding error ~ 1e-16 / h ~ 1e-10 times the function's size, hence 1e-6 relative and 1e-8
absolute.
"""

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import special, stats

from ablate.checks import _reference as ref
from ablate.conventions import optimizer_config
from ablate.engine import OPTIMIZERS, OptimizerConfig
from ablate.engine._layers import _TRUNC_SD
from tests.engine.test_optim import TORCH as TORCH_OPTIM

Array = ref.Array


def exact(actual: object, expected: object) -> None:
    """Closed forms, SciPy and torch agree to float64 rounding."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)  # type: ignore[call-overload]


def fd(actual: object, expected: object) -> None:
    """Agreement with central finite differences (h = 1e-6)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-8)  # type: ignore[call-overload]


def numerical_grad(f: Callable[[], float], a: Array, h: float = 1e-6) -> Array:
    """Central differences of f() with respect to every entry of a (perturbed in place)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + h
        up = f()
        a[idx] = old - h
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * h)
    return g


# ---------------------------------------------------------------- dense and activations


def test_dense_by_hand() -> None:
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    np.testing.assert_array_equal(ref.dense(x, w, np.array([0.0, 1.0, -1.0])), [[2.0, 5.0, 0.0]])


def test_dense_backward_matches_finite_differences() -> None:
    r = np.random.default_rng(0)
    x, w, b, dy = r.normal(size=(3, 4)), r.normal(size=(4, 2)), r.normal(size=2), \
        r.normal(size=(3, 2))
    dx, dw, db = ref.dense_backward(x, w, dy)
    loss = lambda: float((ref.dense(x, w, b) * dy).sum())  # noqa: E731
    for got, a in ((dx, x), (dw, w), (db, b)):
        fd(got, numerical_grad(loss, a))


def test_activations_by_hand_and_against_scipy() -> None:
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(ref.activation("relu", x), [0, 0, 0, 0.5, 3])
    exact(ref.activation("leaky_relu", x, 0.3), [-0.6, -0.15, 0, 0.5, 3])
    exact(ref.activation("sigmoid", x), special.expit(x))
    exact(ref.activation("tanh", x), [math.tanh(v) for v in x])
    exact(ref.activation("elu", x), np.where(x > 0, x, np.exp(x) - 1))
    gelu = x * 0.5 * (1 + special.erf(x / math.sqrt(2)))
    exact(ref.activation("gelu", x), gelu)
    assert ref.activation("gelu", np.array([1.0]))[0] == pytest.approx(0.8413447460685429)


def test_sigmoid_does_not_overflow_for_huge_inputs() -> None:
    np.testing.assert_array_equal(ref.activation("sigmoid", np.array([-1000.0, 1000.0])),
                                  [0.0, 1.0])


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_activation_derivatives_match_finite_differences(name: str) -> None:
    r = np.random.default_rng(1)
    # away from 0, where relu and leaky relu have a kink
    x = np.where(r.random(20) < 0.5, -1.0, 1.0) * r.uniform(0.05, 3.0, 20)
    y = ref.activation(name, x, 0.2)
    h = 1e-6
    numeric = (ref.activation(name, x + h, 0.2) - ref.activation(name, x - h, 0.2)) / (2 * h)
    fd(ref.activation_derivative(name, x, y, 0.2), numeric)


def test_unknown_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        ref.activation("swish", np.zeros(1))


# ---------------------------------------------------------------- softmax and cross-entropy


def test_softmax_against_scipy_and_for_huge_logits() -> None:
    z = np.random.default_rng(2).normal(0, 5, (4, 7))
    exact(ref.softmax(z), special.softmax(z, axis=-1))
    exact(ref.log_softmax(z), special.log_softmax(z, axis=-1))
    z = np.round(z * 1024) / 1024  # dyadic, so that z + 2^20 is exact
    exact(ref.softmax(z + 2.0**20), ref.softmax(z))


def test_cross_entropy_by_hand() -> None:
    z, y = np.array([[0.0, 0.0], [math.log(3.0), 0.0]]), np.array([[1.0, 0.0], [1.0, 0.0]])
    # -log(1/2) and -log(3/4), averaged
    assert ref.cross_entropy(z, y) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    exact(ref.cross_entropy_grad(z, y), [[-0.25, 0.25], [-0.125, 0.125]])


def test_cross_entropy_gradient_matches_finite_differences() -> None:
    r = np.random.default_rng(3)
    z, y = r.normal(size=(5, 4)), ref.one_hot(r.integers(0, 4, 5), 4)
    fd(ref.cross_entropy_grad(z, y), numerical_grad(lambda: ref.cross_entropy(z, y), z))


# ---------------------------------------------------------------- batch normalization


def test_batchnorm_by_hand() -> None:
    x = np.array([[1.0], [3.0]])
    mean, biased, unbiased = ref.batch_stats(x)
    assert (mean[0], biased[0], unbiased[0]) == (2.0, 1.0, 2.0)
    y, _ = ref.batchnorm_train(x, np.array([2.0]), np.array([0.5]), eps=0.0)
    exact(y, [[-1.5], [2.5]])
    # eps goes inside the square root: 1 / sqrt(1 + 3) = 1/2
    y, _ = ref.batchnorm_train(x, np.array([1.0]), np.array([0.0]), eps=3.0)
    exact(y, [[-0.5], [0.5]])
    e = ref.batchnorm_eval(np.array([[4.0]]), np.array([1.0]), np.array([1.0]), np.array([2.0]),
                           np.array([3.0]), eps=1.0)
    exact(e, [[2.0]])


def test_batchnorm_backward_matches_finite_differences() -> None:
    r = np.random.default_rng(4)
    x, gamma, beta, dy = r.normal(size=(5, 3)), r.normal(size=3), r.normal(size=3), \
        r.normal(size=(5, 3))
    y, cache = ref.batchnorm_train(x, gamma, beta, 1e-3)
    dx, dgamma, dbeta = ref.batchnorm_backward(dy, cache)
    loss = lambda: float((ref.batchnorm_train(x, gamma, beta, 1e-3)[0] * dy).sum())  # noqa: E731
    for got, a in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        fd(got, numerical_grad(loss, a))


def test_running_update_conventions_agree_after_conversion() -> None:
    assert ref.running_update(np.array(0.0), np.array(1.0), 0.1, "torch") == pytest.approx(0.1)
    assert ref.running_update(np.array(0.0), np.array(1.0), 0.99, "keras") == pytest.approx(0.01)
    r = np.random.default_rng(5)
    old, new = r.normal(size=4), r.normal(size=4)
    exact(ref.running_update(old, new, 0.99, "keras"),
          ref.running_update(old, new, ref.keras_to_torch_momentum(0.99), "torch"))
    with pytest.raises(ValueError, match="conventions"):
        ref.running_update(old, new, 0.1, "jax")


def test_running_statistics_match_torch_batchnorm() -> None:
    # torch.nn.BatchNorm1d is independent of the engine: unbiased running variance, torch form
    r = np.random.default_rng(6)
    x = r.normal(size=(6, 3))
    bn = torch.nn.BatchNorm1d(3, momentum=0.2, eps=1e-3).double()
    y = bn(torch.as_tensor(x)).detach().numpy()
    layer = ref.BatchNorm(np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), 1e-3, 0.2)
    exact(layer.forward(x, training=True), y)
    exact(layer.running_mean, bn.get_buffer("running_mean").numpy())
    exact(layer.running_var, bn.get_buffer("running_var").numpy())


# ---------------------------------------------------------------- dropout


def test_inverted_dropout_by_hand() -> None:
    x, keep = np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[True, False, True, False]])
    exact(ref.dropout_inverted(x, keep, 0.5, True), [[2, 0, 6, 0]])
    np.testing.assert_array_equal(ref.dropout_inverted(x, keep, 0.5, False), x)
    np.testing.assert_array_equal(ref.dropout_inverted(x, keep, 0.0, True) == x, keep)
    exact(ref.dropout_inverted_backward(np.ones((1, 4)), keep, 0.75), [[4, 0, 4, 0]])


def test_dropout_p_one_gives_zeros_and_bad_p_is_rejected() -> None:
    x, keep = np.ones((2, 3)), np.zeros((2, 3), bool)
    with np.errstate(all="raise"):  # no 0 * inf anywhere
        np.testing.assert_array_equal(ref.dropout_inverted(x, keep, 1.0, True), np.zeros((2, 3)))
        np.testing.assert_array_equal(ref.dropout_inverted_backward(x, keep, 1.0), 0.0)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="dropout probability"):
            ref.dropout_inverted(x, keep, bad, True)


def test_classic_and_inverted_dropout_agree() -> None:
    r = np.random.default_rng(7)
    p, x, w, b = 0.3, r.normal(size=(4, 5)), r.normal(size=(5, 2)), r.normal(size=2)
    keep = r.random((4, 5)) >= p
    w_classic = w / (1 - p)
    exact(ref.dense(ref.dropout_classic(x, keep, p, True), w_classic, b),
          ref.dense(ref.dropout_inverted(x, keep, p, True), w, b))
    test_w = ref.classic_test_weights(w_classic, p)
    exact(ref.dense(ref.dropout_classic(x, keep, p, False), test_w, b), ref.dense(x, w, b))


# ---------------------------------------------------------------- initializers


def test_truncated_normal_sd_against_scipy_and_the_engine_constant() -> None:
    assert ref.truncated_normal_sd(2.0) == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-12)
    assert ref.truncated_normal_sd(2.0) == pytest.approx(_TRUNC_SD, rel=1e-15)


def test_documented_bounds_by_hand() -> None:
    assert ref.weight_distribution("glorot_uniform", None, False, 300, 100).scale == \
        pytest.approx(math.sqrt(6 / 400))
    assert ref.weight_distribution("he_uniform", None, False, 300, 100).scale == \
        pytest.approx(math.sqrt(6 / 300))
    assert ref.weight_distribution("lecun_normal", None, False, 300, 100).scale == \
        pytest.approx(math.sqrt(1 / 300))
    assert ref.weight_distribution("torch_default", None, False, 400, 1).scale == 0.05
    assert ref.weight_distribution("normal", 0.2, False, 3, 4) == ref.Distribution("normal", 0.2)
    assert ref.bias_distribution("torch_default", 100) == ref.Distribution("uniform", 0.1)
    assert ref.bias_distribution("glorot_uniform", 100).kind == "zeros"
    with pytest.raises(ValueError, match="needs a scale"):
        ref.weight_distribution("uniform", None, False, 3, 4)


@pytest.mark.parametrize("name", ["glorot_normal", "he_normal", "lecun_normal"])
def test_truncated_normals_have_the_intended_variance(name: str) -> None:
    d = ref.weight_distribution(name, None, True, 300, 100)
    intended = ref.weight_distribution(name, None, False, 300, 100).scale ** 2
    law = stats.truncnorm(-d.cut / d.scale, d.cut / d.scale, scale=d.scale)
    assert law.var() == pytest.approx(intended, rel=1e-10)


def test_cdfs_against_scipy() -> None:
    x = np.linspace(-0.3, 0.3, 41)
    cases = [
        (ref.Distribution("uniform", 0.2), stats.uniform(-0.2, 0.4)),
        (ref.Distribution("normal", 0.1), stats.norm(0, 0.1)),
        (ref.Distribution("truncated_normal", 0.1, 0.2), stats.truncnorm(-2, 2, scale=0.1)),
    ]
    for dist, law in cases:
        np.testing.assert_allclose(dist.cdf(x), law.cdf(x), rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(ref.Distribution("zeros").cdf(np.array([-1e-9, 0.0])), [0, 1])


# ---------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_torch_conventions_match_torch_optim(name: str) -> None:
    c = optimizer_config("torch", name, lr=0.05)
    r = np.random.default_rng(8)
    w0 = r.normal(size=(3, 4))
    theirs = torch.tensor(w0, requires_grad=True)
    opt = TORCH_OPTIM[name]([theirs], c)
    w, state = w0, ref.optimizer_state(c, w0)
    for t in range(1, 6):
        g = r.normal(size=w0.shape)
        theirs.grad = torch.as_tensor(g)
        opt.step()
        w, state = ref.optimizer_step(c, w, g, state, t)
        np.testing.assert_allclose(w, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_keras_steps_by_hand() -> None:
    w, g = np.array([1.0]), np.array([2.0])

    def step(name: str, **changes: float) -> float:
        c = optimizer_config("keras", name, **changes)
        new, _ = ref.optimizer_step(c, w, g, ref.optimizer_state(c, w), 1)
        return float(new[0])

    assert step("sgd") == pytest.approx(1 - 0.01 * 2)
    assert step("momentum") == pytest.approx(1 - 0.01 * 2)  # v = -lr g; w += v
    assert step("nesterov") == pytest.approx(1 + 0.9 * -0.02 - 0.02)
    # a = 0.1 + 4; w -= lr g / sqrt(a + eps)
    assert step("adagrad") == pytest.approx(1 - 0.001 * 2 / math.sqrt(4.1 + 1e-7))
    assert step("rmsprop") == pytest.approx(1 - 0.001 * 2 / math.sqrt(0.1 * 4 + 1e-7))
    # adadelta: a = 0.05 * 4; d = sqrt(eps) / sqrt(a + eps) g
    d = math.sqrt(1e-7) / math.sqrt(0.2 + 1e-7) * 2
    assert step("adadelta") == pytest.approx(1 - 0.001 * d)
    # adam's first step is lr * g / (|g| + eps / sqrt(1 - b2)) in Keras's form
    assert step("adam") == pytest.approx(1 - 0.001 * 2 / (2 + 1e-7 / math.sqrt(0.001)))
    assert step("adamw") == pytest.approx(1 - 0.001 * 0.004 - 0.001 * 2 / (2 + 1e-7 / 0.0316228),
                                          rel=1e-9)


def test_adam_conventions_agree_without_eps_and_take_lr_sized_first_steps() -> None:
    r = np.random.default_rng(9)
    w0, grads = r.normal(size=5), [r.normal(size=5) for _ in range(4)]
    out = {}
    for conventions in ("torch", "keras"):
        c = optimizer_config(conventions, "adam", lr=0.01, beta1=0.8, beta2=0.99, eps=0.0)
        w, state = w0, ref.optimizer_state(c, w0)
        for t, g in enumerate(grads, start=1):
            w, state = ref.optimizer_step(c, w, g, state, t)
            if t == 1:
                exact(np.abs(w - w0), np.full(5, 0.01))
        out[conventions] = w
    exact(out["torch"], out["keras"])


def test_textbook_momentum_is_pytorch_momentum_scaled_by_lr() -> None:
    r = np.random.default_rng(10)
    w0 = r.normal(size=3)
    c = optimizer_config("torch", "momentum", lr=0.1, momentum=0.9)
    w, state, big_v, w_text = w0, ref.optimizer_state(c, w0), np.zeros(3), w0
    for t in range(1, 5):
        g = r.normal(size=3)
        w, state = ref.optimizer_step(c, w, g, state, t)
        w_text, big_v = ref.momentum_textbook(w_text, big_v, g, 0.1, 0.9)
        exact(big_v, 0.1 * state["v"])
        exact(w_text, w)


def test_unknown_optimizer_and_unresolved_forms_are_rejected() -> None:
    w = np.zeros(1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        ref.optimizer_step(OptimizerConfig("lion", 0.1), w, w, {}, 1)
    for name, form in (("momentum", "velocity"), ("rmsprop", "eps placement"),
                       ("adam", "bias correction")):
        c = OptimizerConfig(name, 0.1, momentum=0.9, rho=0.9, beta1=0.9, beta2=0.99, eps=1e-8)
        with pytest.raises(ValueError, match=form):
            ref.optimizer_step(c, w, w, ref.optimizer_state(c, w), 1)


# ---------------------------------------------------------------- whole MLP


def _mlp(activation: str, r: np.random.Generator, batch: int) -> list[ref.Layer]:
    """5 -> Dense(4) BN act Dropout -> Dense(3) act BN -> Dense(10)."""
    def bn(n: int) -> ref.BatchNorm:
        return ref.BatchNorm(r.uniform(0.5, 2, n), r.normal(size=n), r.normal(size=n),
                             r.uniform(0.5, 2, n), 1e-3, 0.1)

    return [
        ref.Dense(r.normal(size=(5, 4)), r.normal(size=4)), bn(4),
        ref.Activation(activation, 0.2), ref.Dropout(r.random((batch, 4)) >= 0.3, 0.3),
        ref.Dense(r.normal(size=(4, 3)), r.normal(size=3)), ref.Activation(activation, 0.2),
        bn(3), ref.Dense(r.normal(size=(3, 10)), r.normal(size=10)),
    ]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_mlp_backprop_matches_finite_differences(activation: str, training: bool) -> None:
    r = np.random.default_rng(11)
    layers = _mlp(activation, r, batch=6)
    x, y = r.normal(size=(6, 5)), ref.one_hot(r.integers(0, 10, 6), 10)
    running = [(la.running_mean, la.running_var) for la in layers
               if isinstance(la, ref.BatchNorm)]
    ref.mlp_loss_and_grads(layers, x, y, training)
    grads = [dict(la.grads) for la in layers]
    bns = [la for la in layers if isinstance(la, ref.BatchNorm)]
    for bn, (mean, var) in zip(bns, running, strict=True):
        bn.running_mean, bn.running_var = mean, var  # eval must see the same statistics

    def loss() -> float:
        return ref.cross_entropy(ref.mlp_forward(layers, x, training), y)

    checked = 0
    for la, g in zip(layers, grads, strict=True):
        for name, got in g.items():
            param = getattr(la, name)
            fd(got, numerical_grad(loss, param))
            checked += 1
    assert checked == 10  # 3 dense and 2 batch-norm layers, weight and bias each


def test_mlp_backward_returns_the_input_gradient() -> None:
    r = np.random.default_rng(12)
    layers = _mlp("tanh", r, batch=4)
    x, y = r.normal(size=(4, 5)), ref.one_hot(r.integers(0, 10, 4), 10)
    logits = ref.mlp_forward(layers, x, training=False)
    dx = ref.mlp_backward(layers, ref.cross_entropy_grad(logits, y))
    numeric = numerical_grad(
        lambda: ref.cross_entropy(ref.mlp_forward(layers, x, training=False), y), x)
    fd(dx, numeric)


# ---------------------------------------------------------------- documented defaults

# torch's parameter names for the oracle's hyperparameters, per optimizer
_TORCH_NAMES = {"lr": "lr", "momentum": "momentum", "rho": "rho", "eps": "eps",
                "weight_decay": "weight_decay", "initial_accumulator": "initial_accumulator_value"}


def test_the_documented_torch_defaults_are_the_installed_torchs() -> None:
    """DOCUMENTED's torch column against the signatures of the installed torch itself:
    BatchNorm1d, LeakyReLU and every torch.optim class (RMSprop calls rho alpha, Adam
    takes its betas as a pair; momentum 0.9 is ablate's value, torch's SGD default is 0)."""
    import inspect

    def defaults(cls: type) -> dict[str, object]:
        return {k: v.default for k, v in inspect.signature(cls).parameters.items()}

    doc = ref.DOCUMENTED["torch"]
    bn = defaults(torch.nn.BatchNorm1d)
    assert (doc.bn_momentum, doc.bn_epsilon) == (bn["momentum"], bn["eps"])
    assert doc.leaky_relu_slope == defaults(torch.nn.LeakyReLU)["negative_slope"]
    classes = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD,
               "nesterov": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
               "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop,
               "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    assert set(doc.optimizers) == set(classes) == set(OPTIMIZERS)
    for name, config in doc.optimizers.items():
        torch_defaults = defaults(classes[name])
        names = {**_TORCH_NAMES, "rho": "alpha" if name == "rmsprop" else "rho"}
        for field, torch_name in names.items():
            value = getattr(config, field)
            if value is None or (field == "momentum" and name != "sgd"):
                continue
            assert value == torch_defaults[torch_name], (name, field)
        if config.beta1 is not None:
            assert (config.beta1, config.beta2) == torch_defaults["betas"], name
        if name in ("momentum", "nesterov"):
            assert config.momentum == 0.9 and torch_defaults["momentum"] == 0  # ablate's value


def test_the_documented_keras_momentum_converts_to_the_torch_form() -> None:
    """Keras's 0.99 weighs the old running value: the same update as torch's form at
    0.01, not at 0.99."""
    old, batch = np.array([1.0]), np.array([3.0])
    keras = ref.running_update(old, batch, ref.DOCUMENTED["keras"].bn_momentum, "keras")
    exact(keras, ref.running_update(old, batch, 0.01, "torch"))
    assert not np.allclose(keras, ref.running_update(old, batch, 0.99, "torch"))
