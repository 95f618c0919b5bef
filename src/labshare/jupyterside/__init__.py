"""Code that runs inside the member's Jupyter server process, and nowhere else.

The CLI and the supervisor name its classes and extensions to Jupyter as
strings on the command line (`server/launch.py`, `server/records.py`,
`server/outputs.py`), and Jupyter imports them.  So a module here may import
Jupyter freely; one outside may not, and reads only `internals`' table (to
check versions) and `lab`'s name (to know the process), which import no
Jupyter (tests/test_floors.py).  `kernelside/` is the same for code copied
into each kernel's own environment.

- `lab`: the launcher that becomes the Jupyter process.
- `survive`: the kernel manager and provisioner that let kernels outlive it.
- `kernelspecs`: the kernelspec manager that hides labshare's own environment.
- `outputs_keeper`, `execution_clients`: output kept while no tab is open.
- `reclaim`: idle GPUs taken back, and the notices Lab shows about it.
- `internals`: every private name of Jupyter's packages the others use.
"""
