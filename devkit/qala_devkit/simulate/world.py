"""The simulated world every source-system generator shares: the regions and the randomness.

Randomness is derived per (seed, feed, day), never carried from one day to the next, so a day's
export depends only on those three: regenerating one day alone gives the same bytes as
generating it inside a longer run, and feeds do not disturb each other's streams.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np

from transforms.settings import SEEDS_DIR

# Kazakhstan's bounding box (WGS 84): every simulated coordinate stays inside it.
KZ_LAT = (40.5, 55.5)
KZ_LON = (46.4, 87.4)


@dataclass(frozen=True)
class Region:
    kato_code: str  # 9 digits, kept as text: KATO codes are identifiers, not numbers
    kato_prefix: str  # 2 digits: the region or city of republican significance
    kind: str  # "region" or "city"
    name_en: str
    name_ru: str
    population: int
    centre_lat: float
    centre_lon: float


@lru_cache(maxsize=1)
def load_regions() -> tuple[Region, ...]:
    """The 17 regions and 3 cities of republican significance, from the dbt seed."""
    with open(SEEDS_DIR / "regions.csv", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] in ("region", "city")]
    return tuple(
        Region(
            kato_code=r["kato_code"],
            kato_prefix=r["kato_prefix"],
            kind=r["kind"],
            name_en=r["name_en"],
            name_ru=r["name_ru"],
            population=int(r["population"]),
            centre_lat=float(r["centre_lat"]),
            centre_lon=float(r["centre_lon"]),
        )
        for r in rows
    )


@dataclass(frozen=True)
class Town:
    key: str  # "aqkol", "alatau"
    kato_code: str
    kato_prefix: str  # the region it lies in
    name_en: str
    name_ru: str
    population: int
    centre_lat: float
    centre_lon: float


@lru_cache(maxsize=1)
def load_towns() -> dict[str, Town]:
    """The pilot towns (dbt seed `towns`): "aqkol" (Smart Aqkol) and "alatau" (Alatau City)."""
    keys = {"Aqkol": "aqkol", "Alatau City": "alatau"}
    with open(SEEDS_DIR / "towns.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        keys[r["name_en"]]: Town(keys[r["name_en"]], r["kato_code"], r["kato_prefix"], r["name_en"],
                                 r["name_ru"], int(r["population"]), float(r["centre_lat"]),
                                 float(r["centre_lon"]))  # fmt: skip
        for r in rows
    }


def population_shares() -> np.ndarray:
    """Each region's share of the national population, in `load_regions()` order."""
    population = np.array([r.population for r in load_regions()], dtype=np.float64)
    return population / population.sum()


def rng_for(seed: int, feed: str, day: date) -> np.random.Generator:
    """The random stream of one feed on one day.

    crc32, not hash(): Python salts str hashes per process, which would break reproducibility.
    """
    entropy = [seed, zlib.crc32(feed.encode("utf-8")), day.toordinal()]
    return np.random.default_rng(np.random.SeedSequence(entropy))
