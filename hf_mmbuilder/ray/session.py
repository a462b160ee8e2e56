"""The Ray session: the optional ``ray`` library, imported only when a function runs, the
connection to a cluster (or a local one), and retried remote tasks."""

from __future__ import annotations

import os
from typing import Optional


_MAX_RETRIES = 3
_INSTALL_HINT = 'the Ray engine needs the ray extra: pip install "hf_mmbuilder[ray]" (ray[data])'


def ray_library():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return ray


def init(address: Optional[str] = None, **ray_init_kwargs):
    """Connect to a Ray cluster (``address="auto"`` or ``"host:port"``; default ``RAY_ADDRESS``),
    or start a local one.

    Reuses a session that is already running. Usage statistics are off unless the environment
    turns them on, and the dashboard is off for local sessions (neither is needed here).

    Example:
        >>> import hf_mmbuilder.ray as mmray
        >>> mmray.init(num_cpus=2)  # doctest: +SKIP
    """
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    ray = ray_library()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        ray_init_kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, **ray_init_kwargs)
    return ray


def ensure_session():
    # Functions called without init() join RAY_ADDRESS or start a local cluster, as ray.init does.
    return init()


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1).

    Example:
        >>> cluster_cpus()  # doctest: +SKIP
        2
    """
    return max(1, int(ensure_session().cluster_resources().get("CPU", 1)))


class all_cpus_to_one_map:
    """Run a one-map Ray Data pipeline with Ray Data's per-operator resource reservation off.

    The reservation keeps a share of the CPUs for each operator of a plan; for a read-then-map
    plan on a small cluster (2 CPUs) it holds the map to one task until the first one finishes.
    The setting is global to the process, so it is restored afterwards."""

    def __enter__(self):
        self.context = ray_library().data.DataContext.get_current()
        self.saved = self.context.op_resource_reservation_enabled
        self.context.op_resource_reservation_enabled = False

    def __exit__(self, *exc):
        self.context.op_resource_reservation_enabled = self.saved
        return False


_REMOTE_FUNCTIONS: dict = {}


def remote_task(function, num_returns: int = 1):
    """``function`` as a Ray task retried on worker failure (made once per process)."""
    if function not in _REMOTE_FUNCTIONS:
        _REMOTE_FUNCTIONS[function] = ray_library().remote(max_retries=_MAX_RETRIES)(function)
    return _REMOTE_FUNCTIONS[function].options(num_returns=num_returns)
