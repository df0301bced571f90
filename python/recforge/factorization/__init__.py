"""Matrix factorization: explicit-feedback rating models and implicit-feedback ranking models.

All of them keep their learned state as NumPy arrays (``user_factors_``, ``item_factors_``,
biases) and share :class:`FactorRecommender`'s exact top-k, scoring and ``similar_items``.
"""

from __future__ import annotations

from ._base import FactorRecommender
from ._explicit import ALSWR, NMF, SVD, SVDpp
from ._implicit import ALS, BPR, EASE, LMF, CatalogTooLargeError
from ._features import FeatureFactorization

__all__ = ["FactorRecommender", "SVD", "SVDpp", "NMF", "ALSWR", "ALS", "BPR", "LMF", "EASE", "CatalogTooLargeError", "FeatureFactorization"]
