"""GPUs shared by lease: what NVML says (`nvml`), placement (`place`) and the lease files (`leases`).

This floor sits below `server/`, so the kernel provisioner, `labshare run`
and `labshare gpus` all read the cards through `nvml` and decide with
`place`; nothing here reads the site config or prints.
"""
