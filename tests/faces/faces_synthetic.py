"""Face-like synthetic embeddings for the index and import tests: people as random centres (pairwise about
0.85 apart, like different people under dlib's encoder) and photos as those centres plus noise (about
0.35 from each other, like photos of one person)."""

import numpy as np

from neuralens.faces.bulk import Embeddings


def people(count: int, photos: int = 5, seed: int = 0):
    """(names, (count * photos, 128) float32 vectors, (count, 128) centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, 128), dtype=np.float32) * 0.053
    owners = np.repeat(np.arange(count), photos)
    vectors = centres[owners] + rng.standard_normal((len(owners), 128), dtype=np.float32) * 0.025
    return [f"person {i}" for i in owners], vectors, centres


def photos_of(centres: np.ndarray, seed: int = 1) -> np.ndarray:
    """One new 'photo' (embedding) of each person."""
    rng = np.random.default_rng(seed)
    return centres + rng.standard_normal(centres.shape, dtype=np.float32) * 0.025


def rows(count: int, photos: int = 5, seed: int = 0) -> Embeddings:
    """``people(...)`` as the rows an import takes."""
    names, vectors, _ = people(count, photos, seed)
    return Embeddings(names, vectors)
