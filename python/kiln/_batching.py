"""How kiln.serve runs one Ray Serve batch of requests on one kiln.Session.

Two modes (docs/serving.md, "Batching"):

rows  The batch dim is dim 0 of every input and output. Requests are stacked
      along it into one run and the outputs are sliced back per request.
      Kiln compiles static shapes, so each run's row count must be one the
      artifact has code for:
      - dim 0 symbolic ("batch"): the runtime compiles once per distinct row
        count, so a run is padded with zero rows up to the next power of two
        (capped at max_rows): at most log2(max_rows) + 1 compiles, all done
        at start-up by warm_up().
      - dim 0 static N: every run has N rows; requests carry 1..N rows and
        the rest is zero padding.
      Both assume rows are independent (true of inference MLPs, convnets,
      transformers over a batch; not of a model that mixes the batch).
each  Every request runs alone with exactly the artifact's shapes; Ray's
      batch only saves the hand-off to the worker thread per request.
"""
import logging
import threading

import numpy as np

from .runtime import RuntimeError as KilnError

log = logging.getLogger("kiln.serve")

# Kiln statuses that mean "the request is wrong" (kiln_status in runtime.h);
# anything else is the server's fault.
_CLIENT_STATUSES = ("KILN_ERROR_INVALID_ARGUMENT", "KILN_ERROR_NOT_FOUND")


class RequestError(Exception):
    """One request failed; `status` is the HTTP status to answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class Item:
    """One request in Ray's batch queue. `weight` is what it counts against
    the batch's max_batch_size: its rows when it can be stacked, else all of
    it, so that it runs in a batch of its own."""
    __slots__ = ("inputs", "rows", "weight", "error")

    def __init__(self, inputs, rows, weight, error=None):
        self.inputs, self.rows, self.weight, self.error = inputs, rows, weight, error


def item_weight(items):
    """Ray Serve's batch_size_fn."""
    return sum(i.weight for i in items)


class Batcher:
    def __init__(self, session, batching="auto", max_batch_size=8):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.session = session
        self._lock = threading.Lock()  # a Session is not safe to run from two threads
        ins, outs = session.inputs, session.outputs
        self._in_names = [t.name for t in ins]
        rows_ok = bool(ins) and all(len(t.shape) >= 1 and None not in t.shape[1:] for t in ins)
        dim0 = {t.shape[0] for t in ins} if rows_ok else set()
        if batching == "auto":
            batching = "rows" if dim0 == {None} else "each"
        if batching == "each":
            self.max_weight = max_batch_size
            self.buckets = []
        elif batching == "rows":
            if len(dim0) != 1:
                raise ValueError(
                    "batching='rows' needs dim 0 of every input to be the batch (all "
                    "symbolic, or all the same static size) and the other dims static; "
                    f"this artifact's inputs: {ins}")
            n = next(iter(dim0))
            if n is None:
                self.max_weight = max_batch_size
                self.buckets = sorted({min(1 << i, max_batch_size)
                                       for i in range(max_batch_size.bit_length() + 1)})
            else:
                bad = [t for t in outs if not t.shape or t.shape[0] != n]
                if bad:
                    raise ValueError(f"batching='rows': inputs have a static batch of {n} "
                                     f"but outputs {bad} do not")
                self.max_weight = n
                self.buckets = [n]
        else:
            raise ValueError(f"batching must be 'auto', 'rows' or 'each', got {batching!r}")
        self.mode = batching

    def describe(self):
        return {"batching": self.mode, "max_batch_size": self.max_weight,
                "row_buckets": self.buckets}

    def warm_up(self):
        """Compiles every row bucket of a symbolic batch now rather than on
        the first requests, and checks that the outputs split by rows."""
        if self.mode != "rows":
            return
        for n in self.buckets:
            feeds = {t.name: np.zeros((n,) + t.shape[1:], t.dtype) for t in self.session.inputs}
            try:
                outs = self.session.run(feeds)
            except KilnError as e:
                self._give_up_rows(f"a warm-up run of {n} zero rows failed: {e}")
                return
            if any(o.ndim == 0 or o.shape[0] != n for o in outs):
                self._give_up_rows(f"outputs of a {n}-row run do not have {n} rows")
                return

    def item(self, inputs):
        """Wraps a decoded request for the batch queue (on the event loop,
        so that the checks cost the worker thread nothing)."""
        if self.mode != "rows":
            return Item(inputs, None, 1)
        try:
            rows = self._rows(inputs)
        except RequestError as e:
            return Item(inputs, None, 1, e)
        return Item(inputs, rows, rows if rows is not None else self.max_weight)

    def run(self, items):
        """One result per item: {output name: ndarray} or a RequestError."""
        with self._lock:
            results = [i.error for i in items]
            ok = [k for k, i in enumerate(items) if i.error is None]
            stacked = [k for k in ok if self.mode == "rows" and items[k].rows is not None]
            for group in self._groups(stacked, items):
                try:
                    if self.mode == "rows":  # (a group before may have given up on rows)
                        for k, out in zip(group, self._run_rows([items[k] for k in group])):
                            results[k] = out
                except _NotRowWise as e:
                    self._give_up_rows(str(e))
            for k in ok:
                if results[k] is None:
                    results[k] = self._run_one(items[k].inputs)
            return results

    def _groups(self, ks, items):
        """Splits stackable requests into runs of at most max_weight rows
        (Ray's batch_size_fn already keeps a batch within it)."""
        group, rows = [], 0
        for k in ks:
            if group and rows + items[k].rows > self.max_weight:
                yield group
                group, rows = [], 0
            group.append(k)
            rows += items[k].rows
        if group:
            yield group

    def _rows(self, inputs):
        """The request's row count if it can be stacked; None to let Kiln
        judge it alone (it says what is wrong); RequestError for a row count
        this server does not run."""
        rows = set()
        for t in self.session.inputs:
            a = inputs.get(t.name)
            if (type(a) is not np.ndarray or a.dtype != t.dtype
                    or a.shape[1:] != t.shape[1:] or a.ndim != len(t.shape)):
                return None
            rows.add(a.shape[0])
        if len(inputs) != len(self._in_names) or len(rows) != 1:
            return None
        n = rows.pop()
        if not 1 <= n <= self.max_weight:
            raise RequestError(f"the request has {n} rows (dim 0); this server runs "
                               f"1 to {self.max_weight} rows per request")
        return n

    def _run_rows(self, items):
        total = sum(i.rows for i in items)
        padded = next(b for b in self.buckets if b >= total)
        feeds = {}
        for t in self.session.inputs:
            buf = np.zeros((padded,) + t.shape[1:], t.dtype)
            at = 0
            for i in items:
                buf[at:at + i.rows] = i.inputs[t.name]
                at += i.rows
            feeds[t.name] = buf
        try:
            outs = self.session.run(feeds)
        except KilnError as e:  # not expected once the inputs checked out: run alone
            log.warning("a stacked run of %d rows failed (%s); running its requests alone",
                        padded, e)
            return [self._run_one(i.inputs) for i in items]
        if any(o.ndim == 0 or o.shape[0] != padded for o in outs):
            raise _NotRowWise(f"outputs of a {padded}-row run do not have {padded} rows")
        names, results, at = self._output_names(), [], 0
        for i in items:
            results.append({name: o[at:at + i.rows] for name, o in zip(names, outs)})
            at += i.rows
        return results

    def _run_one(self, inputs):
        # A Session keeps the last value bound to an input: a request that
        # left one out would silently run on another request's tensor.
        missing = [n for n in self._in_names if n not in inputs]
        if missing and set(inputs) <= set(self._in_names):  # else Kiln names the stranger
            return RequestError(f"missing input{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(n) for n in missing)} "
                                f"(inputs: {', '.join(self._in_names)})")
        try:
            outs = self.session.run(inputs)
        except KilnError as e:
            return RequestError(str(e), 400 if e.status in _CLIENT_STATUSES else 500)
        return dict(zip(self._output_names(), outs))

    def _output_names(self):
        # Asked after each run: an artifact compiled per shape lists its
        # outputs only once it has run.
        return [t.name for t in self.session.outputs]

    def _give_up_rows(self, why):
        log.warning("kiln.serve: not stacking requests along dim 0 (%s); each request "
                    "runs alone", why)
        self.mode = "each"
        self.buckets = []


class _NotRowWise(Exception):
    pass
