"""Encoding on a Ray cluster: the embed job's encoder, distributed (the `curator[ray]` extra).

The job is unchanged (jobs/embed.py: the missing pairs, a shard committed at a time, resume
after a crash); only `encode` runs elsewhere. A pool of Ray actors each loads the model once
(curator.embedding.load_encoder, the same code as the local path, on the worker's GPU when it
has one) and encodes slices of each chunk; the vectors come back in order. An actor whose
process dies is restarted and its slice asked again (max_restarts, max_task_retries), so a
killed worker loses nothing; a driver killed with kill -9 resumes from its last committed
shard like the local job, because the driver alone writes.

`address`: None or "auto" starts a local Ray instance on 127.0.0.1 (no dashboard); anything
else is a cluster's address to join.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from curator import embedding

RESTARTS = 3          # times an actor's process may die and be restarted
SLICES_PER_WORKER = 4  # a chunk is cut into this many slices per actor: the pool stays busy


def connect(address: str | None, workers: int | None = None) -> None:
    """Join the cluster at `address`, or start a local instance (workers: its CPUs)."""
    import ray
    if ray.is_initialized():
        return
    if address in (None, "auto", "local"):
        ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


class _EncodeActor:
    def __init__(self, model: str | None, fast: bool):
        self.encoder = embedding.load_encoder(model, fast=fast)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=batch_size)

    def pid(self) -> int:
        return os.getpid()


class RayEncoder:
    """An Encoder (curator.embedding's protocol) whose encode() runs on a pool of Ray actors."""
    backend = "ray"

    def __init__(self, model: str | None = None, *, fast: bool = False, address: str | None = None,
                 workers: int | None = None):
        import ray
        from ray.util import ActorPool

        connect(address, workers)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))
        actor = ray.remote(num_cpus=0 if gpus else 1, num_gpus=gpus, max_restarts=RESTARTS,
                           max_task_retries=RESTARTS)(_EncodeActor)
        self.actors = [actor.remote(model, fast) for _ in range(workers)]
        self.pool = ActorPool(self.actors)
        # The name and width the vectors are stored under: the workers' own encoder's.
        probe = embedding.load_encoder(model, fast=fast)
        self.name, self.dim = probe.name, probe.dim

    def encode(self, texts: Sequence[str], batch_size: int = embedding.BATCH_SIZE) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = max(1, -(-len(texts) // (len(self.actors) * SLICES_PER_WORKER)))
        slices = [texts[i:i + size] for i in range(0, len(texts), size)]
        parts = self.pool.map(lambda a, part: a.encode.remote(part, batch_size), slices)  # in order
        return np.concatenate(list(parts)).astype(np.float32, copy=False)

    def worker_pids(self) -> list[int]:
        import ray
        return ray.get([a.pid.remote() for a in self.actors])
