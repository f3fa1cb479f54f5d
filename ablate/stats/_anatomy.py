"""Anatomy of the spread: which random stream makes the seeds of one arm disagree.

Data: for each random stream k (initialization, data order, dropout masks), the metric
of n_k runs of one arm that vary only stream k, the others held at a reference seed:
`values[k]: (n_k,)`; optionally `all_streams: (n,)`, runs that vary every stream (the
arm's ordinary seeds). Per stream: the sample variance (ddof = 1), its 95% interval
from the chi-square law of (n - 1) s^2 / sigma^2 (exact for normal outcomes), and its
share of the streams' summed variance, with a 95% percentile bootstrap interval
(runs resampled within each stream, from an explicit generator).

Training is not additive: a stream varied alone can move the outcome almost as much
as all of them together (a different minibatch order sends the trajectory elsewhere
whatever the initialization), so the streams' variances need not sum to the variance
with every stream varied; `additivity` (their sum over that variance) says how far.
The shares rank the sources; they are not a decomposition of the total.

The advice: with the arm's sd, how many seeds a contrast of two such arms needs for
P("better") >= 0.8 at 2 x ROPE (`power_for`, the verdict's own power, by the test of
the study's estimand) when the arms' outcomes are uncorrelated (sd of the difference
sqrt(2) sd), and how many if pairing removed the dominant stream's variance entirely
(the most pairing can buy from it: the arms of a contrast share every stream by seed,
but only outcomes that follow the shared stream alike correlate; the report's realized
correlation says how much they did).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from ablate.files import jsonable
from ablate.stats._power import power_for

__all__ = ["Anatomy", "Source", "anatomy", "variance_interval"]

BOOTSTRAPS = 2000  # percentile bootstrap of the shares: quantile error ~0.5% of a share
STREAM_WORDS = {"init": "initialization", "order": "data order", "mask": "dropout masks",
                "all": "all streams"}


@dataclass(frozen=True)
class Source:
    """One random stream varied alone (or all of them: stream "all")."""

    stream: str  # init | order | mask | all
    n: int  # runs
    sd: float  # of the metric over those runs, ddof = 1
    var: float
    var_ci: tuple[float, float]  # 95%, chi-square
    share: float  # var / the streams' summed var (nan for "all")
    share_ci: tuple[float, float]  # 95% percentile bootstrap (nan for "all")


@dataclass(frozen=True)
class Anatomy:
    """The sources of one arm's seed-to-seed variance and what they mean for a design."""

    arm: str
    metric: str
    sources: tuple[Source, ...]  # the varied streams, largest variance first
    all_streams: Source | None  # every stream varied; None when not given
    additivity: float  # sum of the streams' var / var with all varied (nan without it)
    dominant: str  # the stream with the largest variance
    rope: float
    seeds_unpaired: int | None  # for P("better") >= 0.8 at 2 x ROPE, uncorrelated arms
    seeds_paired: int | None  # ... if pairing removed the dominant stream's variance
    advice: str
    images: int | None = None  # images the metric is an accuracy on (None: not one)
    image_sd: float | None = None  # sd of one run's accuracy from sampling those images:
    # sqrt(acc (1 - acc) / images) at the mean accuracy (binomial), beside the seeds' sd

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON values (nan as None)."""
        return {k: jsonable(v) for k, v in dataclasses.asdict(self).items()}


def variance_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The chi-square interval of the variance of `values: (n,)`, n >= 2."""
    n = values.size
    ss = float(((values - values.mean()) ** 2).sum())  # (n - 1) s^2
    a = (1.0 - confidence) / 2.0
    return ss / float(st.chi2.ppf(1.0 - a, n - 1)), ss / float(st.chi2.ppf(a, n - 1))


def _values(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: need a finite 1-D array of at least 2 runs, got {arr!r}")
    return arr


def _points(x: float) -> str:
    return f"{100 * x:.3f}"


def anatomy(values: Mapping[str, object], *, arm: str, metric: str, rope: float,
            rng: np.random.Generator, all_streams: object | None = None,
            alpha: float = 0.05, resolution: float | None = None,
            simulations: int = 400, images: int | None = None,
            estimand: str = "median") -> Anatomy:
    """The anatomy of `values` (stream -> (n_k,) metric of the runs varying it alone).

    rope, resolution: the study's (metric units). rng: a stream keyed by the study and
    arm (the bootstrap and the power simulation draw from it). Metric values in metric
    units; the advice's sentence writes them in points (x 100: an accuracy). images: for
    an accuracy, the images it is measured on (gives `image_sd`). estimand: the study's
    ("median": the sign test plans the seeds; "mean": the sign-flip test).
    """
    if len(values) < 1:
        raise ValueError("anatomy needs at least one varied stream")
    data = {k: _values(v, k) for k, v in values.items()}
    var = {k: float(v.var(ddof=1)) for k, v in data.items()}
    total = sum(var.values())
    boot = {}  # stream -> (B,) bootstrap variances
    for k, v in data.items():
        idx = rng.integers(0, v.size, (BOOTSTRAPS, v.size))  # (B, n_k)
        boot[k] = v[idx].var(axis=1, ddof=1)
    boot_total = sum(boot.values())
    sources = []
    for k in sorted(data, key=lambda k: -var[k]):
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = boot[k] / boot_total  # (B,)
        shares = shares[np.isfinite(shares)]
        ci = (float(np.quantile(shares, 0.025)), float(np.quantile(shares, 0.975))) \
            if shares.size else (math.nan, math.nan)
        sources.append(Source(stream=k, n=int(data[k].size), sd=math.sqrt(var[k]),
                              var=var[k], var_ci=variance_interval(data[k]),
                              share=var[k] / total if total > 0 else math.nan,
                              share_ci=ci))
    everything = None if all_streams is None else _values(all_streams, "all_streams")
    every = None if everything is None else Source(
        stream="all", n=int(everything.size), sd=float(everything.std(ddof=1)),
        var=float(everything.var(ddof=1)), var_ci=variance_interval(everything),
        share=math.nan, share_ci=(math.nan, math.nan))
    additivity = total / every.var if every is not None and every.var > 0 else math.nan
    dominant = sources[0]
    var_arm = every.var if every is not None else total
    n_plan = every.n if every is not None else dominant.n
    rest = sum(s.var for s in sources[1:])

    def seeds(v: float) -> int | None:
        pw = power_for(math.sqrt(2.0 * v), n_plan, rope=rope, alpha=alpha, m=1,
                       resolution=resolution, rng=rng, simulations=simulations,
                       test=estimand)
        return None if pw is None else pw.seeds_better

    unpaired, paired = seeds(var_arm), seeds(min(rest, var_arm))
    image_sd = None
    if images is not None:
        acc = float(np.mean(everything if everything is not None else
                            np.concatenate(list(data.values()))))
        image_sd = math.sqrt(max(acc * (1.0 - acc), 0.0) / images)
    return Anatomy(arm=arm, metric=metric, sources=tuple(sources), all_streams=every,
                   additivity=additivity, dominant=dominant.stream, rope=float(rope),
                   seeds_unpaired=unpaired, seeds_paired=paired,
                   advice=_advice(dominant, every, var_arm, rope, unpaired, paired),
                   images=images, image_sd=image_sd)


def _advice(dominant: Source, every: Source | None, var_arm: float, rope: float,
            unpaired: int | None, paired: int | None) -> str:
    def need(n: int | None) -> str:
        return "more than 200" if n is None else str(n)

    words = STREAM_WORDS.get(dominant.stream, dominant.stream)
    lo, hi = dominant.share_ci
    sd = math.sqrt(var_arm)
    basis = "all streams varied" if every is not None else "the streams' summed variance"
    return (f"{words.capitalize()} is the largest source of the spread ({dominant.share:.0%}"
            f" of the streams' variance, 95% {lo:.0%}-{hi:.0%}). With this arm's sd of "
            f"{_points(sd)} points ({basis}), a contrast of two such arms needs "
            f"{need(unpaired)} seeds for P('better') >= 0.8 at 2 x ROPE ({_points(2 * rope)} "
            f"points) if their outcomes are uncorrelated, and {need(paired)} if pairing "
            f"removed the {words} variance. {_pairing(dominant.stream, words)}")


def _pairing(stream: str, words: str) -> str:
    alike = ("pairing helps only as far as both arms' outcomes follow that stream alike: "
             "the report's realized correlation says how far they did.")
    if stream == "mask":
        return ("An arm without dropout draws no masks, so pairing against it cannot "
                f"remove this source; between arms that both use dropout, {alike}")
    return f"Both arms of a contrast draw {words} from the same seed, so {alike}"
