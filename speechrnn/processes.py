"""Which process this is (of a distributed job, of a machine), and whether one that left a file
behind (a run lock, a cache staging folder) still runs."""

from __future__ import annotations

import os
import socket

import torch.distributed as dist

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def global_rank_is_zero() -> bool:
    """False in every process but the first of a distributed job, judged from the launcher's env.

    Read before the Trainer exists. torchrun sets RANK; Lightning's own launcher sets LOCAL_RANK in
    the processes it starts and NODE_RANK per machine; SLURM sets SLURM_PROCID.
    """
    return all(os.environ.get(name, "0") == "0"
               for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def end_process_group() -> None:
    """Wait for every rank, then destroy the distributed process group, if this process joined one.

    Left to interpreter exit, gloo's threads are torn down in whatever order the exit runs, which
    now and then aborts a finished job ("terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
