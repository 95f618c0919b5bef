"""labshare's own older kernelspecs, rewritten to today's `render` on `labshare start`.

A kernelspec is written once, at `env create` or `env adopt`, but what labshare
puts in one grows (schema 2: uv on the kernel's PATH, `UV_PROJECT`, a `%pip`
that works), and a member should not have to adopt each project again for
it.  Only specs in the member's own kernels folder that carry labshare's
metadata with an older schema are rewritten, from that metadata; anyone
else's spec is never touched, and one that cannot start is left to
`kernels prune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labshare.envs.kernels import SCHEMA, KernelPlaces, Target, problems_of, render
from labshare.envs.specfiles import labshare_meta, locked, read_spec, spec_dirs, write_spec
from labshare.errors import LabshareError


def _target(meta: dict[str, Any]) -> Target | None:
    """The registration an older spec was rendered from, or None when its metadata is not labshare's shape."""
    try:
        return Target(
            project=Path(meta["project"]),
            env=Path(meta["env"]),
            python=Path(meta["python"]),
            python_version=str(meta["python_version"]),
            manager=str(meta["manager"]),
            label=str(meta.get("label") or Path(meta["project"]).name),
            extra_env={str(k): str(v) for k, v in dict(meta.get("extra_env") or {}).items()},
        )
    except (KeyError, TypeError, ValueError):
        return None


def refresh(places: KernelPlaces) -> list[str]:
    """Rewrite labshare's specs of an older schema in `places.user`; return their names."""
    if places.tools is None:
        return []
    done: list[str] = []
    with locked(places.user):
        places.tools.ensure()
        for resource_dir in spec_dirs(places.user):
            spec = read_spec(resource_dir)
            meta = labshare_meta(spec)
            schema = (meta or {}).get("schema", 0)
            if spec is None or meta is None or not isinstance(schema, int) or schema >= SCHEMA:
                continue
            target = _target(meta)
            if target is None or problems_of(spec):
                continue
            new = render(target, str(spec.get("display_name", resource_dir.name)), places.tools)
            new["metadata"]["labshare"] = {**meta, **new["metadata"]["labshare"]}  # keeps `default`
            write_spec(places.user, resource_dir.name, new)
            done.append(resource_dir.name)
    return done


def on_start(places: KernelPlaces | None = None) -> list[str]:
    """`refresh` for `labshare start`: a note to show, never an error that stops the server."""
    try:
        done = refresh(places or KernelPlaces.current())
    except (LabshareError, OSError) as exc:
        return [
            f"Could not update your older labshare kernels for uv and %pip ({exc}); "
            "`labshare start` tries again next time."
        ]
    if not done:
        return []
    return [
        f"Updated {len(done)} kernel(s) so `uv` and `%pip` work in them ({', '.join(done)}); "
        "restart a kernel that is running to use it."
    ]
