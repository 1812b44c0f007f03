"""Where the data shipped with arch_search lives: Hydra configs (``conf/``) and search spaces
(``spaces/``). In a checkout they sit at the top of the repository; a wheel carries them
inside the package (see ``pyproject.toml``)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"arch_search data folder {name!r} not found next to {_PACKAGE}")


def conf_dir() -> Path:
    """The Hydra config tree (``conf/``)."""
    return _data_dir("conf")


def spaces_dir() -> Path:
    """The search spaces (``spaces/``)."""
    return _data_dir("spaces")
