"""kiln.serve: a .kiln artifact behind HTTP on Ray Serve (docs/serving.md).

    python -m kiln.serve model.kiln --replicas 2 --port 8000
    curl -H 'Content-Type: application/json' \\
         -d '{"x": {"dtype": "float32", "data": [[1, 2, 3, 4]]}}' localhost:8000/

or, from Python on a Ray cluster:

    from ray import serve
    serve.run(kiln.serve.app("/shared/model.kiln", replicas=4, threads=2))

Each replica holds one kiln.Session; requests queue in Ray Serve's
@serve.batch and run as described in kiln/_batching.py. POST runs the model,
GET describes it. Bad requests get a 4xx with a JSON {"error": message},
Kiln's own message where Kiln is the one that refused them.
"""
import argparse
import asyncio
import inspect
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from ray import serve
from starlette.responses import Response

from . import _paths
from ._batching import Batcher, RequestError, item_weight
from ._payload import JSON, PayloadError, decode, encode, error_body, response_type
from .runtime import Artifact, Session
from .runtime import RuntimeError as KilnError

log = logging.getLogger("kiln.serve")


@serve.deployment
class KilnDeployment:
    def __init__(self, artifact, threads=1, device=None, batching="auto", max_batch_size=8,
                 batch_wait_timeout_s=0.002):
        session = Session(artifact, device=device, threads=threads)
        self._batcher = Batcher(session, batching, max_batch_size)
        self._batcher.warm_up()
        self.run_batch.set_max_batch_size(self._batcher.max_weight)
        self.run_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self._replica = serve.get_replica_context().replica_tag

        def infos(ts, batch=False):
            # Outputs of an artifact compiled per shape have the shapes of
            # the last (warm-up) run: their batch dim is the inputs' one.
            return [{"name": t.name, "dtype": t.dtype.name if t.dtype else t.dtype_name,
                     "shape": [None if batch and i == 0 else d for i, d in enumerate(t.shape)]}
                    for t in ts]
        symbolic_rows = self._batcher.mode == "rows" and session.inputs[0].shape[0] is None
        self._info = json.dumps({"artifact": os.fspath(artifact), "device": session.device,
                                 "threads": threads, "inputs": infos(session.inputs),
                                 "outputs": infos(session.outputs, symbolic_rows),
                                 **self._batcher.describe()}).encode()

    async def __call__(self, request):
        headers = {"X-Kiln-Replica": self._replica}
        if request.method == "GET":
            return Response(self._info, media_type=JSON, headers=headers)
        if request.method != "POST":
            return Response(error_body("POST tensors to run the model; GET describes it"),
                            status_code=405, media_type=JSON, headers=headers)
        session = self._batcher.session
        try:
            ctype = request.headers.get("content-type")
            inputs = decode(await request.body(), ctype, session.inputs)
            kind = response_type(request.headers.get("accept"), ctype, session.outputs)
            result, batch = await self.run_batch(self._batcher.item(inputs))
            if isinstance(result, RequestError):
                raise result
            body, media = encode(result, kind)
        except (PayloadError, RequestError) as e:
            return Response(error_body(str(e)), status_code=e.status, media_type=JSON,
                            headers=headers)
        except Exception as e:  # a bug of ours: answer 500, keep the replica serving
            log.exception("kiln.serve: request failed")
            return Response(error_body(f"internal error: {type(e).__name__}: {e}"),
                            status_code=500, media_type=JSON, headers=headers)
        headers["X-Kiln-Batch"] = str(batch)
        return Response(body, media_type=media, headers=headers)

    @serve.batch(batch_size_fn=item_weight)
    async def run_batch(self, items):
        # Off the event loop (ctypes drops the GIL), so that the replica keeps
        # taking and decoding requests while Kiln runs.
        results = await asyncio.to_thread(self._batcher.run, items)
        return [(r, len(items)) for r in results]


def app(artifact, replicas=1, threads=1, device=None, batching="auto", max_batch_size=8,
        batch_wait_ms=2.0, num_cpus=None, max_ongoing_requests=None):
    """The Ray Serve application serving `artifact`, a path that every node
    running a replica can read. Each replica reserves `num_cpus` (default:
    its `threads`) so that Ray places replicas where cores are free."""
    here = Path(__file__).resolve().parents[1]
    env = {"KILN_BUILD_DIR": str(_paths.build_dir()), "PYTHONPATH": f"{here}:${{PYTHONPATH}}"}
    return KilnDeployment.options(
        num_replicas=replicas,
        # Room for one batch running and the next one filling.
        max_ongoing_requests=max_ongoing_requests or max(8, 2 * max_batch_size),
        ray_actor_options={"num_cpus": max(threads, 1) if num_cpus is None else num_cpus,
                           "runtime_env": {"env_vars": env}},
    ).bind(os.path.abspath(artifact), threads, device, batching, max_batch_size,
           batch_wait_ms / 1000.0)


_ARG_TYPES = {"replicas": int, "threads": int, "max_batch_size": int, "batch_wait_ms": float,
              "num_cpus": float, "max_ongoing_requests": int}


def build_app(args):
    """app() as a Ray Serve application builder, for
    `serve run kiln.serve:build_app artifact=/shared/model.kiln replicas=4`
    and the import_path of a `serve deploy` config: `args` holds app()'s
    keywords, strings from the command line or typed values from a config."""
    unknown = sorted(set(args) - set(inspect.signature(app).parameters))
    if unknown or "artifact" not in args:
        raise ValueError(f"kiln.serve:build_app takes artifact=PATH and optionally "
                         f"{', '.join(list(inspect.signature(app).parameters)[1:])}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return app(**{k: _ARG_TYPES.get(k, str)(v) for k, v in args.items()})


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kiln.serve",
                                description="Serve a .kiln artifact over HTTP with Ray Serve.")
    p.add_argument("artifact", help=".kiln file (the same path on every node of a cluster)")
    p.add_argument("--replicas", type=int, default=1, help="Kiln sessions, one per Ray actor")
    p.add_argument("--threads", type=int, default=1, help="Kiln threads per replica")
    p.add_argument("--device", help="Kiln device (default: the first present)")
    p.add_argument("--batching", choices=("auto", "rows", "each"), default="auto",
                   help="rows: stack requests along dim 0; each: run them one by one; "
                        "auto: rows where dim 0 is symbolic (docs/serving.md)")
    p.add_argument("--max-batch-size", type=int, default=8,
                   help="rows per run (rows batching), requests per batch (each)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="how long a batch waits for more requests after its first")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to take requests from others")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--route-prefix", default="/")
    p.add_argument("--name", default="kiln", help="Ray Serve application name")
    p.add_argument("--address", help="Ray cluster to join ('auto': the one started on this "
                                     "node by `ray start`); default: start a local one")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster")
    args = p.parse_args(argv)

    import ray
    if args.address:
        ray.init(address=args.address)
    else:
        # Replicas would only fail, retry and fail again with the same message.
        try:
            Artifact(args.artifact).close()
        except KilnError as e:
            p.error(str(e))
        ray.init(num_cpus=args.num_cpus)
    # SIGTERM (a service manager, `kill`) stops it as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app(args.artifact, args.replicas, args.threads, args.device, args.batching,
                      args.max_batch_size, args.batch_wait_ms),
                  name=args.name, route_prefix=args.route_prefix)
        print(f"kiln.serve: {args.artifact} on http://{args.host}:{args.port}"
              f"{args.route_prefix} ({args.replicas} replica{'s' if args.replicas != 1 else ''});"
              " Ctrl-C stops", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        # Only this application: on a shared cluster Serve may run others.
        serve.delete(args.name)
        ray.shutdown()


if __name__ == "__main__":
    # Replicas import the deployment from kiln.serve; defined here it would
    # belong to __main__, which they cannot import.
    from kiln.serve import main as _main
    _main()
