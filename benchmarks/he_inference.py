"""Encrypted inference: the digits MLP (64→32→10, x²) under CKKS, against plaintext.

- single query, encrypt to decrypt (latency mode: one ciphertext, 11 rotations), median of
  20 (5 with --quick); baseline: the same model in numpy on one sample, same run; and the
  same plan on the five-prime chain the compiler chose before the square and the second
  layer shared a prime (``five_prime_chain``: queries alternated with the others, one
  batch each), so the change is measured under the same load;
- batched cost per sample (throughput mode: one ciphertext per feature, 4,096 samples per
  batch), against numpy on the same batch;
- bytes in and out per query and per batch; the size of the evaluation keys; the CPU time
  of the query and the batch beside their wall-clock time (the machine is shared);
- breast cancer (30→16→2), wine (13→10→3) and a digits MLP with two hidden layers
  (64→32→16→10, depth 5), each trained with ``MLP.fit``'s defaults: single queries and
  (the last only without --quick) the test set as one batch;
- 784-pixel inputs: the digits upsampled to 28×28 (each pixel a 4×4 square, 2 pixels of
  border cropped), an MLP 784→32→10 with x² trained with ``MLP.fit``'s defaults, served
  in latency mode with the diagonal layout (15 rotations); median query time against the
  same model in numpy, same run (no target in the issue for this model: the figure is
  recorded for the CNN work to beat).
- the Fashion-MNIST CNN (issue 19): conv 4×7×7 stride 3 → ReLU's degree-2 fit → 2×2
  average pool → dense, trained by three parties with FedAvg (``train_federated``; 6,000
  training images with --quick, all 60,000 without), compiled to a 784→256→10 plan in
  the diagonal layout: single queries (median, against the same model in numpy on one
  image), one batch of 4,096 test images (client encryption, provider evaluation and
  decryption each timed; per image against numpy on the same images), encrypted
  accuracy against plaintext, bytes in and out, evaluation-key size.
Agreement with plaintext predictions is reported for both modes.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

from chainml.inference.he import HEClient, HEParameters, HEProvider, compile_model
from chainml.training.data import iid_partition, load, load_fashion_mnist
from chainml.training.federated import train_federated
from chainml.training.models import CNN, MLP


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(quick: bool = False) -> dict[str, Any]:
    data = load("digits", seed=0)
    model = MLP(64, 10, (32,), activation="square", seed=0)
    for epoch in range(30):
        model.fit(data.x_train, data.y_train, epochs=1, lr=0.02, seed=epoch)
    plan = compile_model(model)
    client = HEClient(plan)
    keys = client.evaluation_keys()
    provider = HEProvider(plan, keys)
    x = data.x_test
    provider.evaluate_query(client.encrypt_query(x[0]))  # warm: weight layouts encoded once
    five = dataclasses.replace(
        plan, parameters=HEParameters.for_bound(plan.depth, plan.logit_bound)
    )
    five_client = HEClient(five)
    five_provider = HEProvider(five, five_client.evaluation_keys())
    five_provider.evaluate_query(five_client.encrypt_query(x[0]))

    log("single queries")
    times, cpu, five_times, five_cpu, agree, sizes = [], [], [], [], 0, (0, 0)
    queries = 5 if quick else 20
    for i in range(queries):
        started, cpu_started = time.perf_counter(), time.process_time()
        query = client.encrypt_query(x[i])
        answer = provider.evaluate_query(query)
        logits = client.decrypt_query(answer, plan)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        agree += int(logits.argmax() == model.predict(x[i : i + 1])[0])
        sizes = (len(query), len(answer))
        started, cpu_started = time.perf_counter(), time.process_time()
        five_client.decrypt_query(five_provider.evaluate_query(five_client.encrypt_query(x[i])))
        five_times.append(time.perf_counter() - started)
        five_cpu.append(time.process_time() - cpu_started)
    plain_times = []
    for i in range(200):
        started = time.perf_counter()
        model.predict(x[i % len(x) : i % len(x) + 1])
        plain_times.append(time.perf_counter() - started)

    log("batched")
    batch = np.resize(x, (client.parameters.slots, x.shape[1]))
    started, cpu_started = time.perf_counter(), time.process_time()
    cts = client.encrypt_batch(batch)
    out = provider.evaluate_batch(cts)
    logits = client.decrypt_batch(out, len(batch))
    batch_s = time.perf_counter() - started
    batch_cpu_s = time.process_time() - cpu_started
    started = time.perf_counter()
    plain = model.predict(batch)
    plain_batch_s = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    five_logits = five_client.decrypt_batch(
        five_provider.evaluate_batch(five_client.encrypt_batch(batch)), len(batch)
    )
    five_batch_s = time.perf_counter() - started
    five_batch_cpu_s = time.process_time() - cpu_started
    fashion = _fashion_cnn(quick)
    wide = _wide(data, quick)
    others = _others(quick)
    latency = statistics.median(times)
    plain_latency = statistics.median(plain_times)
    per_sample = batch_s / len(batch)
    return {
        "baseline": "the same model in numpy, same run",
        "model": "digits MLP 64-32-10, x² activation",
        "plaintext_accuracy": round(model.accuracy(data.x_test, data.y_test), 4),
        "parameters": {
            "poly_degree": client.parameters.poly_degree,
            "coeff_bits": list(client.parameters.coeff_bits),
        },
        "query_ms": round(latency * 1000, 2),
        # this process's CPU time (SEAL runs on one thread): what the query costs, less
        # the waiting a loaded machine adds to the wall-clock figure above
        "query_cpu_ms": round(statistics.median(cpu) * 1000, 2),
        "query_vs_plaintext": round(latency / plain_latency, 1),
        "query_agreement": f"{agree}/{queries}",
        "batch_ms_per_sample": round(per_sample * 1000, 4),
        "batch_cpu_ms_per_sample": round(batch_cpu_s / len(batch) * 1000, 4),
        "batch_vs_plaintext": round(per_sample / (plain_batch_s / len(batch)), 1),
        "batch_agreement": round(float((logits.argmax(1) == plain).mean()), 4),
        "query_bytes_in": sizes[0],
        "query_bytes_out": sizes[1],
        "batch_bytes_in": sum(len(c) for c in cts),
        "batch_bytes_out": sum(len(c) for c in out),
        "evaluation_keys_bytes": {k: len(v) for k, v in keys.items()},
        "five_prime_chain": {
            "coeff_bits": list(five.parameters.coeff_bits),
            "query_ms": round(statistics.median(five_times) * 1000, 2),
            "query_cpu_ms": round(statistics.median(five_cpu) * 1000, 2),
            "batch_ms_per_sample": round(five_batch_s / len(batch) * 1000, 4),
            "batch_cpu_ms_per_sample": round(five_batch_cpu_s / len(batch) * 1000, 4),
            "batch_agreement": round(float((five_logits.argmax(1) == plain).mean()), 4),
            "query_ratio": round(latency / statistics.median(five_times), 3),
            "batch_ratio": round(batch_s / five_batch_s, 3),
        },
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "digits_28x28_mlp": wide,
        "fashion_mnist_cnn": fashion,
        **others,
        "targets": {
            "query_ms": 30,
            "batch_ms_per_sample": 0.3,
            "query_bytes_in": 210_000,
            "evaluation_keys_bytes": 25_000_000,
        },
    }


def _upsample(x: np.ndarray) -> np.ndarray:
    """8×8 digits as 28×28 images: each pixel a 4×4 square, 2 pixels of border cropped."""
    big = np.kron(x.reshape(-1, 8, 8), np.ones((1, 4, 4)))[:, 2:30, 2:30]
    return big.reshape(len(x), -1)


def _wide(data: Any, quick: bool) -> dict[str, Any]:
    log("784-pixel inputs")
    x_train, x_test = _upsample(data.x_train), _upsample(data.x_test)
    model = MLP(784, 10, (32,), activation="square", seed=0)
    for epoch in range(10):
        model.fit(x_train, data.y_train, epochs=1, seed=epoch)
    figures = _figures(model, x_test, data.y_test, quick, batch=False)
    return {"model": "MLP 784-32-10, x², digits upsampled to 28x28", **figures}


def _others(quick: bool) -> dict[str, Any]:
    """Breast cancer, wine and a two-hidden-layer digits MLP, each trained with
    ``MLP.fit``'s defaults and measured like the digits MLP."""
    out: dict[str, Any] = {}
    for name, hidden, epochs, batch in (
        ("breast_cancer", (16,), 20, True),
        ("wine", (10,), 30, True),
        ("digits", (32, 16), 20, not quick),
    ):
        log(f"{name} {hidden}")
        data = load(name, seed=0)
        model = MLP(data.n_features, data.n_classes, hidden, activation="square", seed=0)
        for epoch in range(epochs):
            model.fit(data.x_train, data.y_train, epochs=1, seed=epoch)
        sizes = "-".join(str(n) for n in (data.n_features, *hidden, data.n_classes))
        key = f"{name}_mlp_{sizes}"
        out[key] = _figures(model, data.x_test, data.y_test, quick, batch=batch)
    return out


def _figures(
    model: MLP, x_test: np.ndarray, y_test: np.ndarray, quick: bool, *, batch: bool
) -> dict[str, Any]:
    """Single queries (median time against numpy on one row, same run), and with
    ``batch`` the whole test set in throughput mode (time per sample against numpy on the
    same rows; agreement and accuracy against plaintext)."""
    plan = compile_model(model)
    client = HEClient(plan)
    keys = client.evaluation_keys()
    provider = HEProvider(plan, keys)
    provider.evaluate_query(client.encrypt_query(x_test[0]))  # warm
    times, agree, max_error, sizes = [], 0, 0.0, (0, 0)
    queries = 5 if quick else 20
    for i in range(queries):
        started = time.perf_counter()
        query = client.encrypt_query(x_test[i])
        answer = provider.evaluate_query(query)
        logits = client.decrypt_query(answer)
        times.append(time.perf_counter() - started)
        want = model.logits(x_test[i : i + 1])[0]
        agree += int(logits.argmax() == want.argmax())
        max_error = max(max_error, float(np.abs(logits - want).max()))
        sizes = (len(query), len(answer))
    plain_times = []
    for i in range(200):
        started = time.perf_counter()
        model.predict(x_test[i % len(x_test) : i % len(x_test) + 1])
        plain_times.append(time.perf_counter() - started)
    latency, plain_latency = statistics.median(times), statistics.median(plain_times)
    result: dict[str, Any] = {
        "layout": plan.layout,
        "depth": plan.depth,
        "rotations": len(plan.rotations),
        "parameters": {
            "poly_degree": plan.parameters.poly_degree,
            "coeff_bits": list(plan.parameters.coeff_bits),
        },
        "plaintext_accuracy": round(model.accuracy(x_test, y_test), 4),
        "query_ms": round(latency * 1000, 2),
        "query_vs_plaintext": round(latency / plain_latency, 1),
        "query_agreement": f"{agree}/{queries}",
        "query_max_logit_error": max_error,
        "query_bytes_in": sizes[0],
        "query_bytes_out": sizes[1],
        "evaluation_keys_bytes": {k: len(v) for k, v in keys.items()},
    }
    if batch:
        started = time.perf_counter()
        cts = client.encrypt_batch(x_test)
        out = provider.evaluate_batch(cts)
        logits = client.decrypt_batch(out, len(x_test))
        batch_s = time.perf_counter() - started
        started = time.perf_counter()
        plain = model.predict(x_test)
        plain_s = time.perf_counter() - started
        encrypted = logits.argmax(1)
        result |= {
            "batch_rows": len(x_test),
            "batch_ms_per_sample": round(batch_s / len(x_test) * 1000, 4),
            "batch_vs_plaintext": round(batch_s / plain_s, 1),
            "batch_agreement": round(float((encrypted == plain).mean()), 4),
            "encrypted_accuracy": round(float((encrypted == y_test).mean()), 4),
            "batch_bytes_in": sum(len(c) for c in cts),
            "batch_bytes_out": sum(len(c) for c in out),
        }
    return result


def _fashion_cnn(quick: bool) -> dict[str, Any]:
    """The Fashion-MNIST CNN, trained federatedly, served in both modes."""
    log("Fashion-MNIST CNN: federated training")
    data = load_fashion_mnist()
    n = 6000 if quick else len(data.y_train)  # --quick: under a minute on two cores
    sub = type(data)(data.name, data.x_train[:n], data.y_train[:n], data.x_test, data.y_test)
    started = time.perf_counter()
    model, history = train_federated(
        sub,
        iid_partition(n, 3, seed=0),
        rounds=3,
        make_model=lambda: CNN(activation="relu_poly", seed=0),
        local_epochs=1,
        lr=0.03,
        clip=100.0,
    )
    train_s = time.perf_counter() - started
    assert isinstance(model, CNN)
    log("Fashion-MNIST CNN: compile and keys")
    plan = compile_model(model, input_range=(0.0, 1.0))
    client = HEClient(plan)
    keys = client.evaluation_keys()
    provider = HEProvider(plan, keys)
    x_test, y_test = data.x_test, data.y_test
    provider.evaluate_query(client.encrypt_query(x_test[0]))  # warm: layouts encoded once
    log("Fashion-MNIST CNN: single queries")
    times, cpu, agree, max_error, sizes = [], [], 0, 0.0, (0, 0)
    queries = 5 if quick else 20
    for i in range(queries):
        started, cpu_started = time.perf_counter(), time.process_time()
        query = client.encrypt_query(x_test[i])
        answer = provider.evaluate_query(query)
        logits = client.decrypt_query(answer)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        want = model.logits(x_test[i : i + 1])[0]
        agree += int(logits.argmax() == want.argmax())
        max_error = max(max_error, float(np.abs(logits - want).max()))
        sizes = (len(query), len(answer))
    plain_times = []
    for i in range(200):
        started = time.perf_counter()
        model.predict(x_test[i : i + 1])
        plain_times.append(time.perf_counter() - started)
    log("Fashion-MNIST CNN: one batch of 4,096 images")
    x, y = x_test[: client.parameters.slots], y_test[: client.parameters.slots]
    cpu_started = time.process_time()
    started = time.perf_counter()
    cts = client.encrypt_batch(x)
    encrypted_at = time.perf_counter()
    out = provider.evaluate_batch(cts)
    evaluated_at = time.perf_counter()
    batch_logits = client.decrypt_batch(out, len(x))
    done = time.perf_counter()
    batch_cpu_s = time.process_time() - cpu_started
    plain = model.logits(x)
    plain_s = time.perf_counter() - done
    encrypted, plain_pred = batch_logits.argmax(1), plain.argmax(1)
    latency, plain_latency = statistics.median(times), statistics.median(plain_times)
    per_image = (done - started) / len(x)
    return {
        "model": "CNN conv 4x7x7 s3, ReLU's degree-2 fit, avgpool 2, dense; FedAvg, 3 parties",
        "training_images": n,
        "training_s": round(train_s, 1),
        "accuracy_per_round": [round(a, 4) for a in history.accuracy],
        "layout": plan.layout,
        "depth": plan.depth,
        "rotations": len(plan.rotations),
        "parameters": {
            "poly_degree": plan.parameters.poly_degree,
            "coeff_bits": list(plan.parameters.coeff_bits),
        },
        "query_ms": round(latency * 1000, 1),
        "query_cpu_ms": round(statistics.median(cpu) * 1000, 1),
        "query_vs_plaintext": round(latency / plain_latency, 1),
        "query_agreement": f"{agree}/{queries}",
        "query_max_logit_error": max_error,
        "query_bytes_in": sizes[0],
        "query_bytes_out": sizes[1],
        "batch_rows": len(x),
        "batch_ms_per_image": round(per_image * 1000, 3),
        "batch_cpu_ms_per_image": round(batch_cpu_s / len(x) * 1000, 3),
        "batch_ms_per_image_client_encrypt": round((encrypted_at - started) / len(x) * 1000, 3),
        "batch_ms_per_image_provider": round((evaluated_at - encrypted_at) / len(x) * 1000, 3),
        "batch_vs_plaintext": round(per_image / (plain_s / len(x)), 1),
        "batch_agreement": round(float((encrypted == plain_pred).mean()), 4),
        "batch_max_logit_error": float(np.abs(batch_logits - plain).max()),
        "plaintext_accuracy": round(float((plain_pred == y).mean()), 4),
        "encrypted_accuracy": round(float((encrypted == y).mean()), 4),
        "batch_bytes_in": sum(len(c) for c in cts),
        "batch_bytes_out": sum(len(c) for c in out),
        "evaluation_keys_bytes": {k: len(v) for k, v in keys.items()},
        "targets": {"query_ms": 500, "batch_ms_per_image": 5, "accuracy_points": 0.5},
    }
