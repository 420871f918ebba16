"""``snntrain resume=<run dir>`` alone: continue the run with the overrides it was started with.

A resumed run must use its original config (:func:`snntrain.training.config.check_resumable`).
When the command line holds ``resume=...`` and nothing that changes the run's config (only
Hydra's own ``hydra.*`` settings and the keys a resumed run may change, such as
``trainer.epochs`` or ``device``), :func:`with_run_overrides` puts the run's own overrides
(its ``.hydra/overrides.yaml``) in front and says which it reused; the keys given on the
command line win. Any other command line is returned unchanged (and checked against the
checkpoint as usual).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path


def run_folder(resume: str) -> Path:
    """The run directory of ``resume`` (a run directory, or a checkpoint file in its ``checkpoints/``)."""
    p = Path(resume)
    if p.is_file():
        return p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p


def saved_overrides(run: Path) -> list[str] | None:
    """The overrides the run at ``run`` was started with (without ``resume=``), or None if it has no readable record."""
    import yaml

    try:
        saved = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        return None
    return [o for o in saved if o.split("=", 1)[0].lstrip("+~") != "resume"]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def with_run_overrides(argv: list[str]) -> list[str]:
    """``["resume=<dir>", ...]`` -> ``[<the run's overrides>..., "resume=<dir>", ...]`` (printed) when nothing else
    in ``argv`` changes the run's config; any other ``argv`` unchanged."""
    from .training.schema import RESUME_MAY_DIFFER

    resumes = [a for a in argv if _key(a) == "resume" and "=" in a]
    if len(resumes) != 1 or not resumes[0].split("=", 1)[1] or "-m" in argv or "--multirun" in argv:
        return argv
    given = {_key(a) for a in argv}
    if any(not (k.startswith(("hydra.", "hydra/")) or k in RESUME_MAY_DIFFER) for k in given):
        return argv
    try:
        run = run_folder(resumes[0].split("=", 1)[1])
        saved = [o for o in saved_overrides(run) or [] if _key(o) not in given]
    except (OSError, ValueError):  # a path the system refuses (too long, NUL): the usual checks explain it
        return argv
    if not saved:
        return argv
    shown = " ".join(shlex.quote(o) for o in saved)
    print(f"snntrain: resuming with the run's own overrides ({run / '.hydra' / 'overrides.yaml'}): {shown}",
          file=sys.stderr)
    return [*saved, *argv]
