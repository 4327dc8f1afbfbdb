"""Measure what autograd keeps for the backward pass: the reference for training memory.

During a training forward pass every operation stores the tensors its backward needs
(a convolution its input, a max-pool its argmax indices, ...). ``torch.autograd.graph.
saved_tensors_hooks`` shows each of them as it is saved; counting each block of memory once
and leaving out the parameters and buffers gives the activation memory that training holds
between the forward and the backward pass.
"""

from dataclasses import dataclass

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from .shape_trace import _image_size


@dataclass
class SavedTensors:
    total_bytes: int
    by_module: dict   # module path -> bytes first saved while that module ran
    count: int        # distinct blocks of memory


def measure_saved_activations(model, image_size=224, batch_size=1, in_channels=None):
    """Bytes of activations autograd saves in one training-mode forward pass of ``model``.

    Each storage is counted once (an in-place ReLU's output and the next convolution's input
    are the same memory); parameters and buffers are left out. The model's mode is restored
    and the hooks removed afterwards. Works on the ``meta`` device (sizes without numbers).
    """
    height, width = _image_size(image_size)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    if in_channels is None:
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        in_channels = convs[0].in_channels if convs else 3
    not_activations = {StorageWeakRef(t.untyped_storage())
                       for t in list(model.parameters()) + list(model.buffers())}
    seen = {}
    running = [""]
    handles = []

    def pack(tensor):
        key = StorageWeakRef(tensor.untyped_storage())
        if key not in not_activations and key not in seen:
            seen[key] = (tensor, running[0])  # holding it keeps the storage (and its key) unique
        return tensor

    was_training = model.training
    try:
        for path, module in model.named_modules():
            if next(module.children(), None) is None and module is not model:
                handles.append(module.register_forward_pre_hook(
                    lambda module, args, path=path: running.__setitem__(0, path)))
        model.train()
        x = torch.zeros(batch_size, in_channels, height, width, device=device,
                        dtype=first.dtype if first is not None else torch.float32)
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    by_module = {}
    for tensor, path in seen.values():
        by_module[path] = by_module.get(path, 0) + tensor.untyped_storage().nbytes()
    return SavedTensors(sum(by_module.values()), by_module, len(seen))
