"""Who uses what on this host: every Jupyter server, its kernels, their CPU, memory and GPU.

`processes` takes the snapshot `ps` and `top` show, from one psutil pass
over /proc (`sampling`), which every user may read, so `ps` needs no
secrets: `argv` reads command lines (the one reading, shared with
`doctor`), `attribution` ties processes to servers and kernels, and
`discovery` asks a server for its notebook paths only with the owner's
token, which only the owner and root can read.  GPU figures come from
`gpus.nvml`, behind a function tests can replace; `leased` ties the
processes on each card to their GPU leases, and `gpu_report` is the same
snapshot seen from the cards, for `labshare gpus`.  `stop` is the admin's
way to end a member's server as that member would.
"""
