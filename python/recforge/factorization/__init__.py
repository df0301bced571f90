"""Matrix factorization: explicit-feedback rating models and implicit-feedback ranking models.

All of them keep their learned state as NumPy arrays (``user_factors_``, ``item_factors_``,
biases) and share :class:`FactorRecommender`'s exact top-k, scoring and ``similar_items``.
"""

from __future__ import annotations

from ._base import FactorRecommender

__all__ = ["FactorRecommender"]
