"""CKKS inference on the digits test set: encrypted predictions agree with plaintext, the
provider never holds the client's secret key, and bad ciphertexts get typed errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chainml.inference import he
from chainml.inference.he import (
    BadCiphertext,
    HEClient,
    HEProvider,
    UnsupportedModel,
    compile_model,
)
from chainml.training.models import MLP, LogisticRegression


@pytest.fixture(scope="module")
def mlp(x2_mlp):
    model = x2_mlp
    plan = compile_model(model)
    client = HEClient(plan)
    return model, plan, client, HEProvider(plan, client.evaluation_keys())


def _check_agreement(digits, model, plan, client, provider):
    x, y = digits.x_test, digits.y_test
    logits = client.decrypt_batch(provider.evaluate_batch(client.encrypt_batch(x)), len(x))
    encrypted, plain = logits.argmax(1), model.predict(x)
    assert (encrypted == plain).mean() >= 0.995
    assert abs((encrypted == y).mean() - (plain == y).mean()) <= 0.005


def test_mlp_batched_agrees_with_plaintext(digits, mlp):
    model, plan, client, provider = mlp
    assert model.accuracy(digits.x_test, digits.y_test) > 0.93
    _check_agreement(digits, model, plan, client, provider)


def test_mlp_single_queries_agree_with_plaintext(digits, mlp):
    model, plan, client, provider = mlp
    x = digits.x_test[:25]
    for row in x:
        logits = client.decrypt_query(provider.evaluate_query(client.encrypt_query(row)), plan)
        assert np.abs(logits - plan.plaintext(row[None])[0]).max() < 1e-3
    assert len(plan.rotations) == 11  # Galois keys only for the steps used


def test_the_square_and_the_second_layer_share_one_prime(digits, mlp):
    """The digits MLP's chain is (edge, 60, scale, 60): three data primes for depth 3,
    the square multiplied unrescaled by the second layer's weights and rescaled once by
    the 60-bit prime.  Both modes give what the five-prime chain gives, within 1e-3 of
    numpy; a query is a prime smaller."""
    model, plan, client, provider = mlp
    assert plan.fused and plan.shape.fused
    bits = plan.parameters.coeff_bits
    assert len(bits) == plan.depth + 1 == 4 and bits[1] == bits[3] == 60
    assert bits[2] == plan.parameters.scale_bits
    unfused = dataclasses.replace(
        plan, parameters=he.HEParameters.for_bound(plan.depth, plan.logit_bound)
    )
    assert not unfused.fused and len(unfused.parameters.coeff_bits) == 5
    other = HEClient(unfused)
    other_provider = HEProvider(unfused, other.evaluation_keys())
    x = digits.x_test[:64]
    want = plan.plaintext(x)
    for c, p in ((client, provider), (other, other_provider)):
        got = c.decrypt_batch(p.evaluate_batch(c.encrypt_batch(x)), len(x))
        assert np.abs(got - want).max() < 1e-3
        assert (
            np.abs(c.decrypt_query(p.evaluate_query(c.encrypt_query(x[5]))) - want[5]).max() < 1e-3
        )
    assert len(client.encrypt_query(x[0])) < 0.9 * len(other.encrypt_query(x[0]))


def test_logistic_regression_both_modes(digits):
    model = LogisticRegression(64, 10, seed=0)
    for epoch in range(30):
        model.fit(digits.x_train, digits.y_train, epochs=1, seed=epoch)
    plan = compile_model(model.params)
    assert plan.depth == 1
    client = HEClient(plan)
    provider = HEProvider(plan, client.evaluation_keys())
    _check_agreement(digits, model, plan, client, provider)
    row = digits.x_test[3]
    logits = client.decrypt_query(provider.evaluate_query(client.encrypt_query(row)), plan)
    assert np.abs(logits - plan.plaintext(row[None])[0]).max() < 1e-3


def test_parameters_follow_the_depth():
    assert he.HEParameters.for_depth(3).coeff_bits == (49, 40, 40, 40, 49)
    assert he.HEParameters.for_depth(3).poly_degree == 8192
    assert he.HEParameters.for_depth(6).poly_degree == 16384  # 338 bits: over 8192's 218
    with pytest.raises(UnsupportedModel):
        compile_model(MLP(64, 10, (32,), activation="relu").params, "relu")


def test_the_provider_never_holds_the_secret_key(mlp):
    import tenseal.sealapi as seal

    _, plan, client, _ = mlp
    secret = he._save(client._secret)
    keys = client.evaluation_keys()
    query = client.encrypt_query(np.zeros(64))
    provider = HEProvider(plan, keys)
    provider.evaluate_query(query)
    for blob in (*keys.values(), query):  # everything it was ever given
        assert secret[64:128] not in blob and secret[-64:] not in blob
    held = [v for v in vars(provider).values() if isinstance(v, seal.SecretKey)]
    assert held == [] and "secret" not in " ".join(vars(provider))


def test_bad_input_gets_a_typed_error_and_the_provider_goes_on(digits, mlp):
    _, plan, client, provider = mlp
    good = client.encrypt_query(digits.x_test[0])
    other = HEClient(
        compile_model(LogisticRegression(64, 10).params)
    )  # another parameter set (depth 1: a shorter modulus chain)
    bad = {
        "garbage": b"\x00" * 1000,
        "truncated": good[: len(good) // 2],
        "bad header": b"\xff\xff" + good[2:],  # a SEAL header's magic is checked
        # (a flipped bit in the body can still be a valid ciphertext: CKKS is malleable;
        # requests travel inside signed, sealed envelopes so that one cannot be altered)
        "other parameters": other.encrypt_query(digits.x_test[0]),
        "oversized": good + b"\x00" * he.MAX_QUERY_BYTES,
        "empty": b"",
    }
    for name, data in bad.items():
        with pytest.raises(BadCiphertext):
            provider.evaluate_query(data)
            pytest.fail(name)
    with pytest.raises(BadCiphertext):  # keys from another context
        HEProvider(plan, other.evaluation_keys())
    with pytest.raises(BadCiphertext):  # a batch of the wrong size
        provider.evaluate_batch(client.encrypt_batch(digits.x_test[:10])[:5])
    # and it still serves
    logits = client.decrypt_query(provider.evaluate_query(good), plan)
    assert logits.argmax() == plan.plaintext(digits.x_test[:1])[0].argmax()


@pytest.mark.parametrize(
    ("name", "hidden", "epochs"), [("breast_cancer", (16,), 20), ("wine", (10,), 30)]
)
def test_other_data_agrees_encrypted_in_both_modes(name, hidden, epochs):
    """Data the project was not tuned for (scikit-learn's breast cancer, 30 features and 2
    classes; wine, 13 and 3), an x² MLP trained with MLP.fit's defaults: every test row
    in throughput mode and the first 20 as single queries agree with plaintext, and the
    encrypted accuracy is within half a point of it."""
    from chainml.training.data import load

    data = load(name, seed=0)
    model = MLP(data.n_features, data.n_classes, hidden, activation="square", seed=0)
    for epoch in range(epochs):
        model.fit(data.x_train, data.y_train, epochs=1, seed=epoch)
    assert model.accuracy(data.x_test, data.y_test) > 0.85
    plan = compile_model(model)
    client = HEClient(plan)
    provider = HEProvider(plan, client.evaluation_keys())
    _check_agreement(data, model, plan, client, provider)
    for row in data.x_test[:20]:
        logits = client.decrypt_query(provider.evaluate_query(client.encrypt_query(row)), plan)
        assert logits.argmax() == model.predict(row[None])[0]
        assert np.abs(logits - model.logits(row[None])[0]).max() < 1e-3
