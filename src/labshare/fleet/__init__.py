"""Several servers at once: name them (group), ask them all (ask), pick one (choose).

The servers stay independent, each with its own leases and rules; nothing
here keeps state between servers.  `here` is the server's side of the one
ssh call per server; the rest runs on the laptop (or on any server).
"""
