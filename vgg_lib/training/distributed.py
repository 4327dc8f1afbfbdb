"""Data parallelism with PyTorch's own engine: ``torchrun`` starts the processes,
``DistributedDataParallel`` (DDP) averages the gradients. Nothing here launches processes.

``Distributed`` is the one object the training loop receives to run data-parallel
(``fit(..., distributed=d)``); without it (``None``, the default) it runs in one process exactly
as before. This module is plumbing only: the data objects draw and split the batches. Under
``torchrun --nproc_per_node=N`` every process (rank) runs the same loop:

* every rank draws the same global batch from the same data-order and augmentation generator
  (same seed), then keeps its contiguous share (``shard``), so N ranks together see exactly the
  images, crops, scales, flips and colour shifts one process would see with the same global
  batch;
* DDP averages the gradients of the N shares, which for equal shares is the gradient of the
  mean loss over the global batch: the same optimiser step as one process, up to the order of
  floating-point additions (``tests/test_distributed.py`` measures how far apart they end);
* BatchNorm normalises with each rank's own share unless the model is converted to
  ``SyncBatchNorm`` (``sync_batch_norm=True``; PyTorch runs it on GPUs only);
* per-step losses and per-epoch sums are averaged / summed over the ranks, so every rank
  agrees on when a run diverged or ended and the history is that of the global batch;
* evaluation: each rank evaluates every N-th image with rank 0's BatchNorm statistics
  (``main_buffers``), and the sums are combined;
* only rank 0 writes checkpoints, histories and progress bars (``is_main``); on resume every
  rank reads the same checkpoint, so all restart from the same state;
* the process group has a timeout (``timeout_s``): a rank that hangs makes the others fail
  with a clear error after that long instead of waiting forever, and torchrun then stops all.
"""

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 600  # NCCL's own default is 10 minutes; gloo's would be 30


class DistributedError(RuntimeError):
    """Another process of a data-parallel run failed, hung or could not be reached."""


def launched_by_torchrun():
    """True inside a process started by torchrun (it sets WORLD_SIZE, RANK, LOCAL_RANK...)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclass
class Distributed:
    """This process's place in a data-parallel run (see the module docstring)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    sync_batch_norm: bool = False
    owns_group: bool = False  # True when ``setup`` created the process group (and ends it)

    @property
    def is_main(self):
        return self.rank == 0

    def describe(self):
        """What a history's config records about the run's processes."""
        return dict(world_size=self.world_size, backend=self.backend,
                    sync_batch_norm=self.sync_batch_norm)

    # --- the model ----------------------------------------------------------------------
    def wrap(self, model):
        """``model`` (already on ``self.device``) inside DDP, after converting its BatchNorm
        layers to SyncBatchNorm when asked. Checkpoints and evaluation keep using ``model``
        itself, so state-dict keys carry no ``module.`` prefix."""
        if self.sync_batch_norm:
            # converts child modules in place (the root VGG is not a BatchNorm), so ``model``
            # itself now holds SyncBatchNorm layers, with the same state-dict keys
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # --- the data -----------------------------------------------------------------------
    def check_batch_size(self, batch_size):
        if batch_size % self.world_size:
            raise ValueError(f"batch_size={batch_size} is the global batch and must divide evenly "
                             f"among the {self.world_size} processes; use a multiple of "
                             f"{self.world_size}.")
        return batch_size // self.world_size

    def shard(self, *tensors):
        """This rank's contiguous share of each tensor (all of the global batch's length)."""
        share = len(tensors[0]) // self.world_size
        start = self.rank * share
        return tuple(t[start:start + share] for t in tensors)

    # --- numbers every rank agrees on -----------------------------------------------------
    def _all_reduce(self, tensor, op):
        try:
            dist.all_reduce(tensor, op=op)
        except RuntimeError as error:  # DistBackendError and gloo's timeouts are RuntimeErrors
            raise DistributedError(collective_failure(self.rank, error)) from error
        return tensor

    def mean(self, value):
        """The mean over the ranks of a scalar tensor (a new tensor)."""
        tensor = value.detach().float().clone()
        return self._all_reduce(tensor, dist.ReduceOp.SUM) / self.world_size

    def sum(self, *values):
        """Sums over the ranks of scalar tensors or numbers, as a tuple of the same types."""
        device = self.device if self.backend == "nccl" else torch.device("cpu")
        packed = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        self._all_reduce(packed, dist.ReduceOp.SUM)
        return tuple(type(v)(s) if isinstance(v, (int, float)) else torch.as_tensor(s).to(v)
                     for v, s in zip(values, packed.tolist()))

    @contextmanager
    def main_buffers(self, model):
        """Inside: every rank holds rank 0's buffers (BatchNorm running statistics), so that all
        evaluate the very model rank 0 saves; afterwards each rank has its own again (DDP
        broadcasts rank 0's before every training step anyway)."""
        own = [buffer.detach().clone() for buffer in model.buffers()]
        try:
            for buffer in model.buffers():
                dist.broadcast(buffer.data, src=0)
        except RuntimeError as error:
            raise DistributedError(collective_failure(self.rank, error)) from error
        try:
            yield model
        finally:
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), own):
                    buffer.copy_(saved)

    def barrier(self):
        try:
            dist.barrier()
        except RuntimeError as error:
            raise DistributedError(collective_failure(self.rank, error)) from error

    def close(self):
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def collective_failure(rank, error):
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"rank {rank}: a collective operation failed or timed out ({first[:200]}); another "
            "process of this run failed or hangs. See its own message above; torchrun stops "
            "the remaining processes.")


def setup(device=None, backend=None, timeout_s=DEFAULT_TIMEOUT_S, sync_batch_norm=False):
    """The ``Distributed`` of this process when torchrun started it with more than one process,
    else None (one process: the default path, unchanged).

    Creates the process group from torchrun's environment (``env://``) with ``timeout_s``, unless
    one exists already. ``device``: default ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU.
    ``backend``: default ``nccl`` on CUDA, ``gloo`` on the CPU."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if sync_batch_norm and device.type != "cuda":
        raise ValueError("SyncBatchNorm runs on GPUs only in PyTorch; without --sync-bn every "
                         "process normalises with the statistics of its own share of the batch.")
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=local_rank, device=device, backend=dist.get_backend(),
                       sync_batch_norm=sync_batch_norm, owns_group=owns)
