"""GPUs: NVML and simulated sources, which run owns each GPU process, idle-GPU waste."""
