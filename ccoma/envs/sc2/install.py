"""Where the StarCraft II game and its maps are, and how to install them when they are not there.

pysc2 looks in ``$SC2PATH``, else in the platform's standard folder (Linux ``~/StarCraftII``,
macOS ``/Applications/StarCraft II``, Windows ``C:/Program Files (x86)/StarCraft II``). The game's
binary is ``Versions/Base<build>/SC2_x64`` (``SC2.app/...`` on macOS, ``SC2_x64.exe`` on Windows);
maps go in ``Maps/``. Nothing here imports pysc2.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

FLAT_MAP = "SMAC_Maps/32x32_flat.SC2Map"
SMACV2_MAPS_URL = "https://github.com/oxwhirl/smacv2/releases/download/maps/SMAC_Maps.zip"
LINUX_GAME_URL = "https://blzdistsc2-a.akamaihd.net/Linux/SC2.4.10.zip"

INSTALL_STEPS = f"""\
  1. pip install 'ccoma[sc2]'                      (the client: pysc2-evolved 1.1.1)
  2. the game: Linux - wget {LINUX_GAME_URL}
                       unzip -P iagreetotheeula SC2.4.10.zip -d ~   (-> ~/StarCraftII)
               macOS/Windows - install StarCraft II from Battle.net and start it once
  3. SMACv2's maps: wget {SMACV2_MAPS_URL}
                    unzip SMAC_Maps.zip -d "$SC2PATH/Maps"          (-> Maps/SMAC_Maps/32x32_flat.SC2Map)
  4. export SC2PATH=<the game folder> if it is not in the standard place, then `ccoma doctor` again"""


@dataclasses.dataclass(frozen=True)
class GameLocation:
    """What was found: the game folder, its newest binary, its maps folder, and why not when missing."""

    root: Path | None
    binary: Path | None
    versions: tuple[str, ...]
    maps_dir: Path | None
    flat_map: bool
    reason: str


def standard_root() -> Path:
    """The folder pysc2 uses when SC2PATH is unset."""
    system = platform.system()
    if system == "Darwin":
        return Path("/Applications/StarCraft II")
    if system == "Windows":
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def _exec_name() -> str:
    return {"Darwin": "SC2.app/Contents/MacOS/SC2", "Windows": "SC2_x64.exe"}.get(platform.system(), "SC2_x64")


def find_game(sc2path: str | None = None) -> GameLocation:
    """Locate the game as pysc2 would (``sc2path`` overrides ``$SC2PATH``)."""
    raw = sc2path if sc2path is not None else os.environ.get("SC2PATH")
    root = Path(raw).expanduser() if raw else standard_root()
    where = f"SC2PATH={raw}" if raw else f"standard folder {root}"
    if not root.is_dir():
        return GameLocation(None, None, (), None, False, f"no game folder at {where}")
    versions_dir = root / "Versions"
    versions = tuple(sorted(p.name for p in versions_dir.glob("Base*"))) if versions_dir.is_dir() else ()
    binary = None
    for v in reversed(versions):
        cand = versions_dir / v / _exec_name()
        if cand.is_file() and (platform.system() == "Windows" or os.access(cand, os.X_OK)):
            binary = cand
            break
    maps_dir = root / "Maps" if (root / "Maps").is_dir() else None
    flat = maps_dir is not None and (maps_dir / FLAT_MAP).is_file()
    reason = "" if binary else f"no executable game binary under {versions_dir}/Base*/{_exec_name()}"
    return GameLocation(root, binary, versions, maps_dir, flat, reason)
