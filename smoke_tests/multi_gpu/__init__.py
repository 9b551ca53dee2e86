"""Every GPU in the machine: per-GPU figures against their expected values and their identical siblings, the
interconnect (NVML's topology, a P2P copy matrix, an all-reduce sweep) and data-parallel training of the MNIST
recipe across all devices, on JAX (XLA uses NCCL on GPUs).

    devices.py       the device list: which devices, real GPUs or simulated CPU devices, and their names
    siblings.py      the rule that names a device more than 10% behind the median of its identical siblings
    interconnect.py  expected P2P and all-reduce bandwidth from the topology; the topology's own faults
    measure.py       the JAX child process that measures (`python -m smoke_tests.multi_gpu.measure`)
    ops.py           the JAX operations it times; training.py: the data-parallel training
    child.py         the check process's side of that child; charts.py: the heatmap
"""
