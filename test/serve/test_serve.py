"""kiln.serve on a local Ray cluster: 2 replicas of a compiled MLP behind
HTTP on loopback, checked against onnxruntime, with bad requests and a
bounded load test whose figures are printed (run pytest with -s)."""
import http.client
import io
import json
import os
import socket
import threading
import time

import numpy as np
import pytest
import ray
from conftest import mlp, ort_run
from ray import serve

import kiln.serve

CLIENTS, REQUESTS_PER_CLIENT, LOAD_DEADLINE_S = 8, 100, 60.0


@pytest.fixture(scope="module")
def server(compiled):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a test
    art = compiled("dyn", mlp("batch"))
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    # Replicas' logs (an access line per request) stay in Ray's session
    # folder; a replica that fails to start still fails serve.run, with why.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(kiln.serve.app(art, replicas=2, threads=1, max_batch_size=8),
                  name="kiln", route_prefix="/")
        print(f"\nkiln.serve: 2 replicas up on 127.0.0.1:{port} in "
              f"{time.perf_counter() - t0:.1f} s")
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


def request(port, method="POST", body=None, ctype=None, accept=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {k: v for k, v in (("Content-Type", ctype), ("Accept", accept)) if v}
    c.request(method, "/", body=body, headers=headers)
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    if conn is None:
        c.close()
    return out


def as_json(arrays):
    return json.dumps({k: {"dtype": str(a.dtype), "data": a.tolist()}
                       for k, a in arrays.items()}).encode()


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def close(got, want):
    return got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_get_describes_the_model(server):
    status, headers, body = request(server, "GET")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 16]}]
    assert doc["outputs"] == [{"name": "y", "dtype": "float32", "shape": [None, 4]}]
    assert doc["batching"] == "rows" and doc["row_buckets"] == [1, 2, 4, 8]


def test_answers_match_onnxruntime(server):
    model = mlp("batch")
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    (want,) = ort_run(model, {"x": x})

    status, headers, body = request(server, body=as_json({"x": x}), ctype="application/json")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["y"]["dtype"] == "float32" and doc["y"]["shape"] == [3, 4]
    assert close(np.array(doc["y"]["data"], np.float32), want)

    status, headers, body = request(server, body=npy(x), ctype="application/x-npy")
    assert status == 200 and headers["content-type"] == "application/x-npy", body
    assert close(np.load(io.BytesIO(body)), want)

    buf = io.BytesIO()
    np.savez(buf, x=x)
    status, headers, body = request(server, body=buf.getvalue(), ctype="application/x-npz",
                                    accept="application/json")
    assert status == 200 and headers["content-type"] == "application/json", body
    assert close(np.array(json.loads(body)["y"]["data"], np.float32), want)


@pytest.mark.parametrize("body, ctype, status, message", [
    (b'{"w": [[0.0]]}', "application/json", 400, "no input named 'w' (inputs: x)"),
    (b'{"x": [[1.0, 2.0]]}', "application/json", 400, "expected f32[-1,16], got f32[1,2]"),
    (b'{"x": {"dtype": "float64", "data": [[0.0]]}}', "application/json", 400,
     "expected f32[-1,16], got f64[1,1]"),
    (json.dumps({"x": [[0.0] * 16] * 9}).encode(), "application/json", 400,
     "the request has 9 rows (dim 0); this server runs 1 to 8 rows per request"),
    (b'{"x": [[1.0,', "application/json", 400, "request body is not valid JSON"),
    (b"not numpy", "application/x-npy", 400, "request body is not a valid .npy file"),
    (b"x=1", "application/x-www-form-urlencoded", 415,
     "unsupported Content-Type 'application/x-www-form-urlencoded'"),
])
def test_bad_requests_get_a_clear_4xx(server, body, ctype, status, message):
    got, headers, reply = request(server, body=body, ctype=ctype)
    assert got == status, reply
    assert headers["content-type"] == "application/json"
    assert message in json.loads(reply)["error"]


def test_load(server):
    """CLIENTS keep-alive clients, REQUESTS_PER_CLIENT requests each of 1-4
    rows (JSON and .npy in turn), every answer checked."""
    model = mlp("batch")
    rng = np.random.default_rng(3)
    pool = [rng.standard_normal((int(n), 16)).astype(np.float32) for n in rng.integers(1, 5, 16)]
    want = [ort_run(model, {"x": x})[0] for x in pool]
    bodies = [(as_json({"x": x}), npy(x)) for x in pool]
    latencies, failures, batches, replicas = [], [], [], set()
    lock = threading.Lock()
    deadline = time.perf_counter() + LOAD_DEADLINE_S

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
        try:
            for i in range(REQUESTS_PER_CLIENT):
                if time.perf_counter() > deadline:
                    with lock:
                        failures.append("deadline passed")
                    return
                k = (c * REQUESTS_PER_CLIENT + i) % len(pool)
                as_npy = i % 2
                t = time.perf_counter()
                try:
                    status, headers, body = request(
                        server, body=bodies[k][as_npy], conn=conn,
                        ctype="application/x-npy" if as_npy else "application/json")
                    dt = time.perf_counter() - t
                    if status != 200:
                        raise AssertionError(f"HTTP {status}: {body[:200]!r}")
                    y = (np.load(io.BytesIO(body)) if as_npy else
                         np.array(json.loads(body)["y"]["data"], np.float32))
                    if not close(y, want[k]):
                        raise AssertionError(f"wrong answer for pool[{k}]")
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    with lock:
                        failures.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
                    continue
                with lock:
                    latencies.append(dt)
                    batches.append(int(headers["x-kiln-batch"]))
                    replicas.add(headers["x-kiln-replica"])
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1e3
    print(f"\nkiln.serve load test: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests "
          f"(1-4 rows, JSON and .npy), 2 replicas x 1 thread, 127.0.0.1")
    print(f"  {len(latencies)} ok, {len(failures)} failed in {wall:.2f} s: "
          f"{len(latencies) / wall:.0f} requests/s")
    if len(lat):
        print(f"  latency p50 {np.percentile(lat, 50):.1f} ms, "
              f"p99 {np.percentile(lat, 99):.1f} ms, "
              f"max {lat.max():.1f} ms; mean requests per batch {np.mean(batches):.2f}; "
              f"replicas answering: {len(replicas)}")
    assert not failures, failures[:5]
    assert len(latencies) == CLIENTS * REQUESTS_PER_CLIENT
    assert len(replicas) == 2  # both replicas took traffic

    # The replicas survived the bad requests and the load.
    status, _, body = request(server, body=npy(pool[0]), ctype="application/x-npy")
    assert status == 200 and close(np.load(io.BytesIO(body)), want[0])


def test_build_app_for_serve_configs():
    """kiln.serve:build_app, the import path of `serve run` and `serve deploy`."""
    application = kiln.serve.build_app({"artifact": "m.kiln", "replicas": "3", "threads": "2"})
    assert isinstance(application, serve.Application)
    with pytest.raises(ValueError, match="takes artifact=PATH .*; unknown: replica"):
        kiln.serve.build_app({"artifact": "m.kiln", "replica": "3"})
    with pytest.raises(ValueError, match="takes artifact=PATH"):
        kiln.serve.build_app({"replicas": "3"})
    with pytest.raises(ValueError, match="invalid literal for int"):
        kiln.serve.build_app({"artifact": "m.kiln", "replicas": "three"})
