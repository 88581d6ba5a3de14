"""Where ccoma keeps what it builds once per machine (migrated empty MLflow stores, the compiled
GRU unroll): ``$CCOMA_CACHE_DIR``, else ``$XDG_CACHE_HOME/ccoma``, else ``~/.cache/ccoma``."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("CCOMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ccoma"))
