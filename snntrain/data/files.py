"""Where datasets live on disk, and the error when their files are missing."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

#: the Python default of every dataset's ``root``. The config files use
#: ``${oc.env:SNNTRAIN_DATA,data}``, so on the command line the environment variable
#: SNNTRAIN_DATA points every dataset at a shared folder.
DEFAULT_ROOT = "data"


def require_files(dataset: str, folder: Path, expected: list[str], source: str) -> None:
    """Raise a :class:`ConfigError` naming what is missing under ``folder`` and where it comes from.

    ``expected`` are paths relative to ``folder``; ``source`` says where to get them
    (a URL, or the paper's download page).
    """
    missing = [e for e in expected if not (folder / e).exists()]
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        raise ConfigError(
            f"dataset.root: the {dataset} files are not in {folder} (missing: {shown}). Get them from {source} "
            f"and place them there, or point dataset.root at the folder that holds them "
            f"(dataset.download=true fetches them on a machine with internet access)."
        )
