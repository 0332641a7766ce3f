"""Several processes on one evaluation (torchrun / accelerate launch): each process's rank, and an id one launch shares.

The runner gives each rank every world_size-th group of cases; rank 0 waits for every rank's marker holding
this launch's id, then merges the lines (runner.Evaluation._finish_distributed).
"""

from __future__ import annotations

import os
import socket
from typing import Optional, Tuple


def distributed_rank() -> Tuple[int, int]:
    """(rank, world size) from the variables torchrun and accelerate launch set; (0, 1) otherwise."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return rank, world


def launch_id() -> str:
    """An id shared by the processes of one launch and no other (rank markers from a crashed launch never match)."""
    given = os.environ.get("TORCHELASTIC_RUN_ID", "")
    # torchrun sets "none" unless it made a rendezvous id itself: every such launch would share it.
    if given and given.lower() != "none":
        return given
    rank, world = distributed_rank()
    if world > 1:
        agreed = _agreed_launch_id(rank)
        if agreed is not None:
            return agreed
    # One node, one launcher: its ranks share the launcher as parent, and pids are not reused while it runs.
    return f"{socket.gethostname()}-{os.getppid()}"


def _agreed_launch_id(rank: int) -> Optional[str]:
    """Rank 0's fresh id, shared with every rank through torch.distributed or torchrun's own store; None without."""
    import uuid

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        box = [uuid.uuid4().hex if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not (host and port and os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"):
        return None
    from datetime import timedelta

    # torchrun's agent hosts a key-value store at MASTER_ADDR:MASTER_PORT for this launch (and restart) only.
    store = dist.TCPStore(host, int(port), is_master=False, timeout=timedelta(seconds=300))
    key = f"easyedit_detox/launch_id/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if rank == 0:
        store.set(key, uuid.uuid4().hex)
    return store.get(key).decode()
