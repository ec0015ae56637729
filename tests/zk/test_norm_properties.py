"""Hypothesis over small dimensions: a vector within the bound always proves and verifies;
one above it never verifies (the protocol run by a prover that skips the check); the same
for the L∞ option, with one coordinate out of range."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainml.crypto import zk
from chainml.crypto.zk import _linf, _norm

CTX = zk.NormContext(5, "0x" + "01" * 20, 1, 1, 0, "0x" + "02" * 20)
vectors = st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=12)
SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@SETTINGS
@given(x=vectors, slack=st.integers(0, 1 << 20))
def test_within_the_bound_verifies(x, slack):
    params = zk.NormParams(len(x), sum(v * v for v in x) + slack)
    c, opening = zk.commit(x)
    zk.verify_norm(CTX, params, c, zk.prove_norm(CTX, params, x, opening))


@SETTINGS
@given(x=vectors.filter(lambda v: any(v)), deficit=st.integers(1, 1 << 30))
def test_above_the_bound_never_verifies(x, deficit):
    norm_sq = sum(v * v for v in x)
    params = zk.NormParams(len(x), max(0, norm_sq - deficit))
    c, opening = zk.commit(x)
    forged = _norm._encode(_norm._prove(CTX, params, x, opening.blinding, _norm._SYSTEM))
    try:
        zk.verify_norm(CTX, params, c, forged)
    except zk.InvalidNormProof:
        return
    raise AssertionError("a proof above the bound verified")


@SETTINGS
@given(
    bound=st.integers(1, 1 << 20),
    data=st.data(),
)
def test_linf_within_the_bound_verifies(bound, data):
    x = data.draw(st.lists(st.integers(-bound, bound), min_size=1, max_size=6))
    params = zk.LinfParams(len(x), bound)
    c, opening = zk.commit(x)
    zk.verify_linf(CTX, params, c, zk.prove_linf(CTX, params, x, opening))


@SETTINGS
@given(bound=st.integers(1, 1 << 20), over=st.integers(1, 1 << 20), data=st.data())
def test_linf_one_coordinate_over_the_bound_never_verifies(bound, over, data):
    x = data.draw(st.lists(st.integers(-bound, bound), min_size=1, max_size=6))
    i = data.draw(st.integers(0, len(x) - 1))
    x[i] = data.draw(st.sampled_from([bound + over, -bound - over]))
    params = zk.LinfParams(len(x), bound)
    c, opening = zk.commit(x)
    forged = _linf._encode(_linf._prove(CTX, params, x, opening.blinding, _norm._SYSTEM))
    try:
        zk.verify_linf(CTX, params, c, forged)
    except zk.InvalidNormProof:
        return
    raise AssertionError("a proof with a coordinate out of range verified")
