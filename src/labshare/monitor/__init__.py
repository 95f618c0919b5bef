"""Who uses what on this host: every Jupyter server, its kernels, their CPU, memory and GPU.

`processes` finds servers and kernels in one pass over /proc (psutil), which
every user may read, so `labshare ps` needs no secrets; it asks a server for
its notebook paths only with the owner's token, which only the owner and
root can read.  `gpu` puts NVML behind a function tests can replace.
`stop` is the admin's way to end a member's server as that member would.
"""
