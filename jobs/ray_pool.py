"""The heavy stages on a Ray cluster (the `curator[ray]` extra): the same domain code, distributed.

The jobs do not change: the embed job still commits a shard at a time, the map job fits UMAP
on its seeded sample and the duplicates job links and keeps the same way. What a `RayCluster`
takes over is the loops inside them, as a `curator.parallel.Mapper`: `function(shared, piece)`
for each piece, results in order, run on a pool of Ray actors instead of here:

- encoding: slices of each chunk of texts, each actor holding the model once
  (curator.embedding.load_encoder, on the actor's GPU when the cluster has GPUs);
- placing points on a fitted map: chunks of vectors, the fitted projection shared;
- the duplicate search: batches of k-means cells, the vectors shared.

The same pieces and the same function give the local run's result. `shared` is put in Ray's
object store once and unpickled once per worker, into the worker's own memory. An actor whose
process dies is restarted and its piece asked again (max_restarts, max_task_retries), so a
killed worker loses nothing; a driver killed with kill -9 resumes like the local job, because the driver
alone writes to the database.

`address`: None or "auto" starts a local Ray instance on 127.0.0.1 (no dashboard); anything
else is the address of a cluster to join. `workers`: actors (default: one per GPU, else one per
CPU of the cluster); each gets an equal share of the CPUs, and uses that many threads.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from curator import embedding
from curator.errors import UserError

RESTARTS = 3  # times an actor's process may die and be restarted
START_TIMEOUT = 120  # seconds for every worker to start: longer means the cluster is short of CPUs
SLICES_PER_WORKER = 4  # a chunk of texts is cut into this many slices per actor: the pool stays busy


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start a local instance with this machine's CPUs."""
    import ray

    if ray.is_initialized():
        return
    if address in (None, "auto", "local"):
        # Ray turns token authentication on for a local instance (good) and warns that it did
        # on every start (noise on the command's output).
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


class _Worker:
    """A Ray actor that runs pieces of the domain's loops (curator.parallel's functions)."""

    def __init__(self, cpus: int):
        os.environ["CURATOR_THREADS"] = str(cpus)  # curator.parallel.threads(): ONNX, thread pools
        self.shared_ref, self.shared = None, None

    def apply(self, function: Callable[[Any, Any], Any], shared: list, piece: Any) -> Any:
        # `shared` comes as [ref to its pickle] and is unpickled once per map into this
        # process's own memory: Ray would hand numpy arrays over as one read-only buffer
        # shared by every worker on the node, and functions may use their shared object's
        # arrays as scratch space (pynndescent's search does: two workers writing one buffer
        # placed points differently from the local run).
        if shared[0] != self.shared_ref:
            import ray

            self.shared_ref, self.shared = shared[0], pickle.loads(ray.get(shared[0]))
        return function(self.shared, piece)

    def pid(self) -> int:
        return os.getpid()


class RayCluster:
    """A pool of actors on a Ray cluster, kept for the whole job; `map` is a curator.parallel.Mapper."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        import ray
        from ray.util import ActorPool

        connect(address)
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), resources.get("GPU", 0)
        self.workers = workers or int(gpus) or cpus
        self.cpus_per_worker = max(1, cpus // self.workers)
        actor = ray.remote(
            num_cpus=self.cpus_per_worker,
            num_gpus=min(1.0, gpus / self.workers),
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
        )(_Worker)
        self.actors = [actor.remote(self.cpus_per_worker) for _ in range(self.workers)]
        ready, _ = ray.wait([a.pid.remote() for a in self.actors], num_returns=self.workers, timeout=START_TIMEOUT)
        if len(ready) < self.workers:
            self.close()
            raise UserError(
                f"only {len(ready)} of {self.workers} Ray workers ({self.cpus_per_worker} CPU"
                f"{'s' * (self.cpus_per_worker > 1)} each) started in {START_TIMEOUT} s: the cluster has "
                f"{ray.available_resources().get('CPU', 0):g} of {cpus} CPUs free; ask for fewer --workers"
            )
        self.pool = ActorPool(self.actors)

    def map(self, function: Callable[[Any, Any], Any], shared: Any, pieces: Iterable[Any]) -> Iterator[Any]:
        import ray

        shared_ref = [ray.put(pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL))]
        # ActorPool.map keeps one piece in flight per actor and yields the results in order.
        yield from self.pool.map(lambda actor, piece: actor.apply.remote(function, shared_ref, piece), pieces)

    def encoder(self, model: str | None = None, *, fast: bool = False) -> RayEncoder:
        return RayEncoder(self, model, fast=fast)

    def worker_pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """End the actors (their CPUs and GPUs go back to the cluster); Ray itself stays up."""
        import ray

        for actor in self.actors:
            ray.kill(actor)


class RayEncoder:
    """An Encoder (curator.embedding's protocol) whose encode() runs on a cluster's actors."""

    backend = "ray"

    def __init__(self, cluster: RayCluster, model: str | None = None, *, fast: bool = False):
        self.cluster, self.model, self.fast = cluster, model, fast
        # The name and width the vectors are stored under: the workers' own encoder's (asked of
        # one worker, which keeps the model loaded for the job).
        self.name, self.dim = next(cluster.map(encoder_identity, (model, fast), [None]))

    def encode(self, texts: Sequence[str], batch_size: int = embedding.BATCH_SIZE) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = max(1, -(-len(texts) // (self.cluster.workers * SLICES_PER_WORKER)))
        slices = [texts[i : i + size] for i in range(0, len(texts), size)]
        parts = self.cluster.map(encode_slice, (self.model, self.fast, batch_size), slices)
        return np.concatenate(list(parts)).astype(np.float32, copy=False)


def encode_slice(shared: tuple[str | None, bool, int], texts: list[str]) -> np.ndarray:
    """Vectors of one slice, on a worker; the worker's process loads the model once."""
    model, fast, batch_size = shared
    return _worker_encoder(model, fast).encode(texts, batch_size=batch_size)


def encoder_identity(shared: tuple[str | None, bool], _) -> tuple[str, int]:
    """(name, dim) of the encoder the workers use."""
    encoder = _worker_encoder(*shared)
    return encoder.name, encoder.dim


@functools.cache
def _worker_encoder(model: str | None, fast: bool) -> embedding.Encoder:
    return embedding.load_encoder(model, fast=fast)
