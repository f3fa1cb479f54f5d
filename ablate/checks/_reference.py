"""A float64 NumPy oracle of the layer math, written from the textbook formulas, not from torch.

`ablate check` compares the engine (torch cohort layers) with these functions, replica by
replica, so everything here is one replica: x (B, fan_in), W (fan_in, fan_out), b (fan_out,),
logits (B, C). `tests/test_reference.py` checks the oracle itself against hand-computed cases,
finite differences and SciPy, so it is not trusted blindly.

Where Keras and PyTorch write a formula differently, the oracle follows the form the config
names (`OptimizerConfig.velocity`, `.eps_placement`, `.bias_correction`; which framework uses
which is listed in `ablate.conventions`). Batch-norm momentum is given in one of two
forms: torch's is the weight of the new batch statistic, Keras's the weight of the old
running value (Keras 0.99 == torch 0.01).
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ablate.engine import OptimizerConfig

__all__ = [
    "ACTIVATIONS", "Activation", "Array", "BatchNorm", "BatchNormCache", "Dense",
    "Distribution", "Dropout", "Layer", "OptimizerState", "activation",
    "activation_derivative", "batch_stats", "batchnorm_backward", "batchnorm_eval",
    "batchnorm_train", "bias_distribution", "check_dropout_p", "classic_test_weights",
    "cross_entropy", "cross_entropy_grad", "dense", "dense_backward", "dropout_classic",
    "dropout_inverted", "dropout_inverted_backward", "dropout_keep", "dropout_key",
    "keras_to_torch_momentum", "log_softmax", "mlp_backward", "mlp_forward",
    "mlp_loss_and_grads", "momentum_textbook", "normal_cdf", "normal_pdf", "one_hot",
    "optimizer_state", "optimizer_step", "running_update", "softmax",
    "truncated_normal_sd", "weight_distribution",
]

Array = npt.NDArray[np.float64]

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu")

_erf: Callable[[Array], Array] = np.vectorize(math.erf, otypes=[np.float64])


def normal_cdf(x: Array) -> Array:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2."""
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def normal_pdf(x: Array) -> Array:
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------- dense and activations


def dense(x: Array, w: Array, b: Array) -> Array:
    """y = x W + b: (B, fan_in) @ (fan_in, fan_out) + (fan_out,) -> (B, fan_out)."""
    return x @ w + b


def dense_backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """(dL/dx (B, fan_in), dL/dW (fan_in, fan_out), dL/db (fan_out,)) from dL/dy (B, fan_out)."""
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


def activation(name: str, x: Array, leaky_slope: float = 0.01) -> Array:
    """The activation `name` elementwise; ELU has alpha 1, GELU is the exact erf form."""
    match name:
        case "relu":
            return np.where(x > 0, x, 0.0)
        case "leaky_relu":
            return np.where(x > 0, x, leaky_slope * x)
        case "sigmoid":
            e = np.exp(-np.abs(x))  # exp of a non-positive number never overflows
            return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        case "tanh":
            return np.tanh(x)
        case "elu":
            return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
        case "gelu":
            return x * normal_cdf(x)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def activation_derivative(name: str, x: Array, y: Array, leaky_slope: float = 0.01) -> Array:
    """dy/dx at x, where y = activation(x); sigmoid, tanh and ELU use the outputs themselves.

    ReLU's and leaky ReLU's derivative at exactly 0 is taken from the left (0, resp. slope).
    """
    match name:
        case "relu":
            return np.where(x > 0, 1.0, 0.0)
        case "leaky_relu":
            return np.where(x > 0, 1.0, leaky_slope)
        case "sigmoid":
            return y * (1.0 - y)  # s' = s (1 - s)
        case "tanh":
            return 1.0 - np.square(y)  # tanh' = 1 - tanh^2
        case "elu":
            return np.where(x > 0, 1.0, y + 1.0)  # (e^x - 1)' = e^x = y + 1
        case "gelu":
            return normal_cdf(x) + x * normal_pdf(x)  # (x Phi(x))' = Phi(x) + x phi(x)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


# ---------------------------------------------------------------- softmax and cross-entropy


def softmax(z: Array) -> Array:
    """Row-wise softmax of logits (B, C); the row max is subtracted so exp never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p: Array = e / e.sum(axis=-1, keepdims=True)
    return p


def log_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    out: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def one_hot(labels: npt.NDArray[np.int64], classes: int) -> Array:
    """(B,) integer labels -> (B, classes) one-hot rows."""
    return np.eye(classes)[labels]


def cross_entropy(z: Array, y: Array) -> float:
    """Mean over the batch of -sum_c y_c log softmax(z)_c; z, y: (B, C), y one-hot."""
    return float(-(y * log_softmax(z)).sum(axis=-1).mean())


def cross_entropy_grad(z: Array, y: Array) -> Array:
    """d(mean cross-entropy)/dz = (p - y) / B, (B, C)."""
    grad: Array = (softmax(z) - y) / z.shape[0]
    return grad


# ---------------------------------------------------------------- batch normalization


def batch_stats(x: Array) -> tuple[Array, Array, Array]:
    """(mean, biased variance, unbiased variance) over the batch axis of x (B, F), each (F,)."""
    n = x.shape[0]
    mean = x.sum(axis=0) / n
    ss = np.square(x - mean).sum(axis=0)
    return mean, ss / n, ss / max(n - 1, 1)


@dataclass(frozen=True)
class BatchNormCache:
    """What the training-mode backward pass needs from the forward pass."""

    xhat: Array  # (B, F) normalized input
    inv_std: Array  # (F,) 1 / sqrt(var + eps)
    gamma: Array  # (F,)


def batchnorm_train(x: Array, gamma: Array, beta: Array,
                    eps: float) -> tuple[Array, BatchNormCache]:
    """y = gamma (x - mean) / sqrt(var + eps) + beta with the batch's biased variance."""
    mean, var, _ = batch_stats(x)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * inv_std
    return gamma * xhat + beta, BatchNormCache(xhat, inv_std, gamma)


def batchnorm_backward(dy: Array, cache: BatchNormCache) -> tuple[Array, Array, Array]:
    """(dx (B, F), dgamma (F,), dbeta (F,)) of training-mode batch norm.

    dx = inv_std / B (B dxhat - sum dxhat - xhat sum(dxhat xhat)), dxhat = dy gamma, which
    follows the mean and the variance back to every row.
    """
    n = dy.shape[0]
    dxhat = dy * cache.gamma
    dx = cache.inv_std / n * (
        n * dxhat - dxhat.sum(axis=0) - cache.xhat * (dxhat * cache.xhat).sum(axis=0))
    return dx, (dy * cache.xhat).sum(axis=0), dy.sum(axis=0)


def batchnorm_eval(x: Array, gamma: Array, beta: Array, mean: Array, var: Array,
                   eps: float) -> Array:
    """Inference-mode batch norm: the running statistics, so each row on its own."""
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def running_update(running: Array, batch: Array, momentum: float, conventions: str) -> Array:
    """One moving-average update of a running statistic.

    torch: (1 - m) running + m batch  (m weighs the new batch statistic)
    keras: m running + (1 - m) batch  (m weighs the old running value)

    Which batch variance is fed in is the caller's choice: torch feeds the unbiased one, as
    the engine does under both conventions; Keras 3 feeds the biased one (`ops.moments`).
    """
    if conventions == "torch":
        return (1.0 - momentum) * running + momentum * batch
    if conventions == "keras":
        return momentum * running + (1.0 - momentum) * batch
    raise ValueError(f"unknown conventions {conventions!r}; expected 'torch' or 'keras'")


def keras_to_torch_momentum(momentum: float) -> float:
    """Keras's BN momentum 0.99 is torch's 0.01."""
    return 1.0 - momentum


# ---------------------------------------------------------------- dropout


def check_dropout_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")


def dropout_key(seed: int, layer: int) -> int:
    """The 63-bit key of seed's dropout stream at hidden `layer`: the first 8 bytes of
    sha256("{seed}/dropout/{layer}"), little-endian, top bit cleared."""
    digest = hashlib.sha256(f"{int(seed)}/dropout/{layer}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _mix32(x: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """lowbias32 on uint32 arrays (NumPy's uint32 arithmetic wraps and shifts logically)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def dropout_keep(key: int, step: int, rows: int, features: int, p: float
                 ) -> npt.NDArray[np.bool_]:
    """The engine's documented dropout rule for one replica, from scratch: unit n of the
    (rows, features) mask at optimizer `step` draws 16 bits u from the pair word
    h = mix((n // 2) * 0x9E3779B9 ^ a), a = mix(lo ^ mix(step ^ hi)) (the low half for even
    n, the high half for odd n), U = (u ^ 0x8000) / 2^16, and is kept iff
    U >= round(p 2^16) / 2^16."""
    with np.errstate(over="ignore"):
        lo, hi = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
        a = _mix32(lo ^ _mix32(np.asarray(step, np.uint32) ^ hi))
        n = np.arange(rows * features, dtype=np.uint64)
        pair = ((n // 2) * np.uint64(0x9E3779B9) % np.uint64(1 << 32)).astype(np.uint32)
        h = _mix32(pair ^ a)
        u = (h >> ((n % 2) * 16).astype(np.uint32)) & np.uint32(0xFFFF)
    uniform = (u ^ 0x8000).astype(np.float64) / 65536.0
    return (uniform >= round(p * 65536) / 65536.0).reshape(rows, features)


def dropout_inverted(x: Array, keep: npt.NDArray[np.bool_], p: float, training: bool) -> Array:
    """Inverted dropout: training keeps units where `keep` and scales them by 1/(1-p).

    p = 1 drops everything and gives zeros (never 0 * inf = NaN); eval is the identity.
    """
    check_dropout_p(p)
    if not training:
        return x
    if p == 1.0:
        return np.zeros_like(x)
    return np.where(keep, x / (1.0 - p), 0.0)


def dropout_inverted_backward(dy: Array, keep: npt.NDArray[np.bool_], p: float) -> Array:
    check_dropout_p(p)
    return np.zeros_like(dy) if p == 1.0 else np.where(keep, dy / (1.0 - p), 0.0)


def dropout_classic(x: Array, keep: npt.NDArray[np.bool_], p: float, training: bool) -> Array:
    """Classic dropout (Srivastava et al. 2014): no scaling in training, identity at test time.

    The test-time correction lives in the next layer's weights: `classic_test_weights`.
    """
    check_dropout_p(p)
    return np.where(keep, x, 0.0) if training else x


def classic_test_weights(w: Array, p: float) -> Array:
    """At test time classic dropout scales the following weights by the keep probability."""
    check_dropout_p(p)
    return w * (1.0 - p)


# ---------------------------------------------------------------- initializers


def truncated_normal_sd(c: float) -> float:
    """Standard deviation of N(0, 1) truncated to [-c, c]: sqrt(1 - 2c phi(c) / (2 Phi(c) - 1))."""
    phi = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    return math.sqrt(1.0 - 2.0 * c * phi / math.erf(c / math.sqrt(2.0)))


@dataclass(frozen=True)
class Distribution:
    """The documented distribution of an initializer's draws."""

    kind: Literal["uniform", "normal", "truncated_normal", "zeros"]
    scale: float = 0.0  # uniform: bound a of U(-a, a); normals: sd of the untruncated normal
    cut: float = math.inf  # truncated_normal: support [-cut, cut]

    def cdf(self, x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)
        match self.kind:
            case "uniform":
                return np.clip((x + self.scale) / (2.0 * self.scale), 0.0, 1.0)
            case "normal":
                return normal_cdf(x / self.scale)
            case "truncated_normal":
                lo = normal_cdf(np.asarray(-self.cut / self.scale))
                hi = normal_cdf(np.asarray(self.cut / self.scale))
                inside = np.clip(x, -self.cut, self.cut)
                return (normal_cdf(inside / self.scale) - lo) / (hi - lo)
            case "zeros":
                return np.where(x >= 0.0, 1.0, 0.0)


def weight_distribution(name: str, scale: float | None, truncated: bool, fan_in: int,
                        fan_out: int) -> Distribution:
    """Distribution of a (fan_in, fan_out) kernel from initializer `name`.

    Variance scaling (Glorot & Bengio 2010; He et al. 2015; LeCun 1998): Var = num / den,
    glorot den = (fan_in + fan_out) / 2, he num = 2; uniform bound sqrt(3 Var) (so glorot's
    is sqrt(6 / (fan_in + fan_out))), normal sd sqrt(Var). Keras truncates its normals at 2 sd
    and divides the sd by `truncated_normal_sd(2)` so that the truncated draw has variance Var.
    `torch_default` is nn.Linear's U(+-1/sqrt(fan_in)).
    """
    var = {
        "glorot": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in, "lecun": 1.0 / fan_in,
    }.get(name.split("_")[0])
    if var is not None and name.endswith("_uniform"):
        return Distribution("uniform", math.sqrt(3.0 * var))
    if var is not None and name.endswith("_normal"):
        if truncated:
            sd = math.sqrt(var) / truncated_normal_sd(2.0)
            return Distribution("truncated_normal", sd, 2.0 * sd)
        return Distribution("normal", math.sqrt(var))
    match name:
        case "uniform" | "normal":
            if scale is None:
                raise ValueError(f"initializer {name!r} needs a scale")
            return Distribution(name, scale)
        case "zeros":
            return Distribution("zeros")
        case "torch_default":
            return Distribution("uniform", 1.0 / math.sqrt(fan_in))
    raise ValueError(f"unknown initializer {name!r}")


def bias_distribution(name: str, fan_in: int) -> Distribution:
    """Biases are zeros (Keras) except nn.Linear's U(+-1/sqrt(fan_in)) for `torch_default`."""
    if name == "torch_default":
        return Distribution("uniform", 1.0 / math.sqrt(fan_in))
    return Distribution("zeros")


# ---------------------------------------------------------------- optimizers

OptimizerState = dict[str, Array]


def optimizer_state(config: OptimizerConfig, w: Array) -> OptimizerState:
    """Initial slots: zeros, except AdaGrad's accumulator at `initial_accumulator`."""
    zeros = np.zeros_like(w)
    match config.name:
        case "momentum" | "nesterov":
            return {"v": zeros}
        case "adagrad":
            return {"a": np.full_like(w, config.initial_accumulator or 0.0)}
        case "adadelta":
            return {"a": zeros, "u": zeros.copy()}
        case "rmsprop":
            return {"a": zeros}
        case "adam" | "adamw":
            return {"m": zeros, "v": zeros.copy()}
    return {}


def momentum_textbook(w: Array, big_v: Array, g: Array, lr: float,
                      momentum: float) -> tuple[Array, Array]:
    """The classic form: V_t = a V_{t-1} + lr g; W_t = W_{t-1} - V_t. Returns (W_t, V_t)."""
    big_v = momentum * big_v + lr * g
    return w - big_v, big_v


def optimizer_step(config: OptimizerConfig, w: Array, g: Array, state: OptimizerState,
                   t: int) -> tuple[Array, OptimizerState]:
    """One step t (from 1) of `config.name` on weights w with gradient g: (new w, new state).

    SGD; momentum (velocity "gradients", PyTorch's: v = m v + g, w -= lr v; "steps", Keras's:
    v = m v - lr g, w += v); Nesterov (Sutskever et al. 2013, in the same two forms); AdaGrad
    (Duchi et al. 2011); Adadelta (Zeiler 2012, times lr); RMSprop (Hinton 2012); AdaGrad and
    RMSprop add eps outside the square root (PyTorch) or inside it (Keras); Adam (Kingma & Ba
    2015: bias correction "moments" is Algorithm 1 with bias-corrected moments, PyTorch's;
    "step_size" the "efficient" form of section 2 with eps outside the correction, Keras's);
    AdamW (Loshchilov & Hutter 2019: decay lr*wd*w, then Adam).
    """
    lr, eps = config.lr, config.eps or 0.0
    s = dict(state)

    def root(a: Array) -> Array:
        if config.eps_placement not in ("inside_sqrt", "outside_sqrt"):
            raise ValueError(f"unknown eps placement {config.eps_placement!r}")
        return np.sqrt(a + eps) if config.eps_placement == "inside_sqrt" else np.sqrt(a) + eps

    match config.name:
        case "sgd":
            return w - lr * g, s
        case "momentum" | "nesterov":
            m = config.momentum or 0.0
            if config.velocity not in ("gradients", "steps"):
                raise ValueError(f"unknown velocity form {config.velocity!r}")
            if config.velocity == "steps":
                s["v"] = m * s["v"] - lr * g
                step = s["v"] if config.name == "momentum" else m * s["v"] - lr * g
                return w + step, s
            s["v"] = m * s["v"] + g
            step = s["v"] if config.name == "momentum" else g + m * s["v"]
            return w - lr * step, s
        case "adagrad":
            s["a"] = s["a"] + g * g
            return w - lr * g / root(s["a"]), s
        case "adadelta":
            rho = config.rho or 0.0
            s["a"] = rho * s["a"] + (1.0 - rho) * g * g
            delta = np.sqrt(s["u"] + eps) / np.sqrt(s["a"] + eps) * g
            s["u"] = rho * s["u"] + (1.0 - rho) * delta * delta
            return w - lr * delta, s
        case "rmsprop":
            rho = config.rho or 0.0
            s["a"] = rho * s["a"] + (1.0 - rho) * g * g
            return w - lr * g / root(s["a"]), s
        case "adam" | "adamw":
            b1, b2 = config.beta1 or 0.0, config.beta2 or 0.0
            if config.name == "adamw":
                w = w - lr * (config.weight_decay or 0.0) * w
            s["m"] = b1 * s["m"] + (1.0 - b1) * g
            s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
            if config.bias_correction not in ("moments", "step_size"):
                raise ValueError(f"unknown bias correction {config.bias_correction!r}")
            if config.bias_correction == "step_size":
                lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
                return w - lr_t * s["m"] / (np.sqrt(s["v"]) + eps), s
            m_hat, v_hat = s["m"] / (1.0 - b1**t), s["v"] / (1.0 - b2**t)
            return w - lr * m_hat / (np.sqrt(v_hat) + eps), s
    raise ValueError(f"unknown optimizer {config.name!r}")


# ---------------------------------------------------------------- documented defaults
# Each framework's defaults as its documentation states them, in its own parameter names
# and forms (Keras 3's keras.io API pages; PyTorch's torch.nn and torch.optim pages, whose
# signatures tests/checks/test_reference.py reads from the installed torch). Nothing here
# is derived from `ablate.conventions`: `ablate check` holds the conventions to this.


@dataclass(frozen=True)
class Documented:
    """One framework's documented defaults for what ablate's conventions resolve."""

    bn_momentum: float  # in the framework's own form (Keras: weight of the old value)
    bn_epsilon: float
    bn_running_variance: Literal["unbiased", "biased"]  # the batch variance it averages
    leaky_relu_slope: float
    kernel_initializer: str  # ablate's name of the Dense layer's default initializer
    truncated_normals: bool  # variance-scaling normals truncated at 2 sd
    optimizers: dict[str, OptimizerConfig]  # ablate's optimizer name -> documented config


def _documented_optimizers(forms: dict[str, str],
                           values: dict[str, dict[str, float]]) -> dict[str, OptimizerConfig]:
    def config(name: str) -> OptimizerConfig:
        form = {"momentum": "velocity", "nesterov": "velocity", "adagrad": "eps_placement",
                "rmsprop": "eps_placement", "adam": "bias_correction",
                "adamw": "bias_correction"}.get(name)
        extra = {form: forms[form]} if form else {}
        return OptimizerConfig(name=name, **values[name], **extra)  # type: ignore[arg-type]

    return {name: config(name) for name in values}


DOCUMENTED: dict[str, Documented] = {
    # keras.layers.BatchNormalization(momentum=0.99, epsilon=0.001): moving = moving *
    # momentum + batch * (1 - momentum), batch variance from ops.moments (biased);
    # keras.layers.LeakyReLU(negative_slope=0.3); Dense(kernel_initializer=
    # "glorot_uniform", bias_initializer="zeros"); VarianceScaling normals truncated.
    "keras": Documented(
        bn_momentum=0.99, bn_epsilon=1e-3, bn_running_variance="biased",
        leaky_relu_slope=0.3, kernel_initializer="glorot_uniform", truncated_normals=True,
        optimizers=_documented_optimizers({
            # SGD: velocity = momentum * velocity - lr * g; w += velocity (nesterov:
            # w += momentum * velocity - lr * g); Adagrad and RMSprop: lr g / sqrt(a + eps);
            # Adam(W): alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), w -= alpha m /
            # (sqrt(v) + eps)
            "velocity": "steps", "eps_placement": "inside_sqrt",
            "bias_correction": "step_size"}, {
            "sgd": {"lr": 0.01},  # SGD(learning_rate=0.01)
            "momentum": {"lr": 0.01, "momentum": 0.9},  # momentum: ablate's value
            "nesterov": {"lr": 0.01, "momentum": 0.9},
            # Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)
            "adagrad": {"lr": 0.001, "initial_accumulator": 0.1, "eps": 1e-7},
            "adadelta": {"lr": 0.001, "rho": 0.95, "eps": 1e-7},  # Adadelta(...)
            "rmsprop": {"lr": 0.001, "rho": 0.9, "eps": 1e-7},  # RMSprop(...)
            "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
            "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                      "weight_decay": 0.004},
        })),
    # torch.nn.BatchNorm1d(eps=1e-05, momentum=0.1): running = (1 - momentum) running +
    # momentum batch, batch variance unbiased; LeakyReLU(negative_slope=0.01); Linear:
    # U(+-1/sqrt(in_features)) weights and biases.
    "torch": Documented(
        bn_momentum=0.1, bn_epsilon=1e-5, bn_running_variance="unbiased",
        leaky_relu_slope=0.01, kernel_initializer="torch_default", truncated_normals=False,
        optimizers=_documented_optimizers({
            # SGD: b = momentum b + g; w -= lr b (nesterov: w -= lr (g + momentum b));
            # Adagrad and RMSprop: lr g / (sqrt(a) + eps); Adam(W): bias-corrected moments
            "velocity": "gradients", "eps_placement": "outside_sqrt",
            "bias_correction": "moments"}, {
            "sgd": {"lr": 0.001},  # SGD(lr=1e-3)
            "momentum": {"lr": 0.001, "momentum": 0.9},  # momentum: ablate's value
            "nesterov": {"lr": 0.001, "momentum": 0.9},
            # Adagrad(lr=0.01, initial_accumulator_value=0, eps=1e-10)
            "adagrad": {"lr": 0.01, "initial_accumulator": 0.0, "eps": 1e-10},
            "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},  # Adadelta(...)
            "rmsprop": {"lr": 0.01, "rho": 0.99, "eps": 1e-8},  # RMSprop(alpha=0.99, ...)
            "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                      "weight_decay": 0.01},
        })),
}


# ---------------------------------------------------------------- whole MLP
# Each layer stores what its forward pass saw; the backward pass walks the layers from the
# output back, each turning the upstream gradient dL/dy into dL/dx with the stored values
# (the memoization that makes backpropagation cost about one more forward pass).


@dataclass(eq=False)
class Dense:
    weight: Array  # (fan_in, fan_out)
    bias: Array  # (fan_out,)
    grads: dict[str, Array] = field(default_factory=dict)
    x: Array | None = None

    def forward(self, x: Array, training: bool) -> Array:
        self.x = x
        return dense(x, self.weight, self.bias)

    def backward(self, dy: Array) -> Array:
        assert self.x is not None, "forward first"
        dx, self.grads["weight"], self.grads["bias"] = dense_backward(self.x, self.weight, dy)
        return dx


@dataclass(eq=False)
class BatchNorm:
    """Batch norm with torch-form `momentum`; training updates the running statistics."""

    weight: Array  # gamma (F,)
    bias: Array  # beta (F,)
    running_mean: Array  # (F,)
    running_var: Array  # (F,)
    eps: float
    momentum: float
    bessel: bool = True  # running variance from the unbiased (torch) or biased (keras) estimate
    grads: dict[str, Array] = field(default_factory=dict)
    x: Array | None = None
    cache: BatchNormCache | None = None  # None after an eval-mode forward

    def forward(self, x: Array, training: bool) -> Array:
        self.x, self.cache = x, None
        if not training:
            return batchnorm_eval(x, self.weight, self.bias, self.running_mean,
                                  self.running_var, self.eps)
        y, self.cache = batchnorm_train(x, self.weight, self.bias, self.eps)
        mean, biased, unbiased = batch_stats(x)
        self.running_mean = running_update(self.running_mean, mean, self.momentum, "torch")
        self.running_var = running_update(self.running_var, unbiased if self.bessel else biased,
                                          self.momentum, "torch")
        return y

    def backward(self, dy: Array) -> Array:
        if self.cache is not None:
            dx, self.grads["weight"], self.grads["bias"] = batchnorm_backward(dy, self.cache)
            return dx
        assert self.x is not None, "forward first"
        # eval: y = gamma (x - mean) inv_std + beta, affine per feature
        inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
        xhat = (self.x - self.running_mean) * inv_std
        self.grads = {"weight": (dy * xhat).sum(axis=0), "bias": dy.sum(axis=0)}
        return dy * self.weight * inv_std


@dataclass(eq=False)
class Activation:
    name: str
    leaky_slope: float = 0.01
    grads: dict[str, Array] = field(default_factory=dict)
    x: Array | None = None
    y: Array | None = None

    def forward(self, x: Array, training: bool) -> Array:
        self.x, self.y = x, activation(self.name, x, self.leaky_slope)
        return self.y

    def backward(self, dy: Array) -> Array:
        assert self.x is not None and self.y is not None, "forward first"
        return dy * activation_derivative(self.name, self.x, self.y, self.leaky_slope)


@dataclass(eq=False)
class Dropout:
    keep: npt.NDArray[np.bool_]  # (B, F) fixed mask
    p: float
    grads: dict[str, Array] = field(default_factory=dict)
    training: bool = True

    def forward(self, x: Array, training: bool) -> Array:
        self.training = training
        return dropout_inverted(x, self.keep, self.p, training)

    def backward(self, dy: Array) -> Array:
        return dropout_inverted_backward(dy, self.keep, self.p) if self.training else dy


Layer = Dense | BatchNorm | Activation | Dropout


def mlp_forward(layers: list[Layer], x: Array, training: bool) -> Array:
    """Logits (B, C) of the layer stack; every layer keeps what backward needs."""
    for layer in layers:
        x = layer.forward(x, training)
    return x


def mlp_backward(layers: list[Layer], dlogits: Array) -> Array:
    """Fill each layer's `grads` from the output back; returns dL/dx of the input."""
    dy = dlogits
    for layer in reversed(layers):
        dy = layer.backward(dy)
    return dy


def mlp_loss_and_grads(layers: list[Layer], x: Array, y: Array,
                       training: bool) -> tuple[float, Array]:
    """Mean softmax cross-entropy of one-hot y (B, C), and backprop into every layer's grads."""
    logits = mlp_forward(layers, x, training)
    mlp_backward(layers, cross_entropy_grad(logits, y))
    return cross_entropy(logits, y), logits
