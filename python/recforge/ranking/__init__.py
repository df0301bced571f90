"""Learning to rank: the ranking stage of a multi-stage recommender.

* :class:`LambdaMART` - histogram gradient-boosted trees with the ``lambdarank``,
  ``rank_xendcg``, ``ranknet``, ``binary`` and ``regression`` objectives.
* :class:`LinearRanker` - pointwise logistic, pairwise RankNet / RankSVM and listwise ListNet
  linear models trained by SGD.
* :func:`read_svmlight`, :func:`read_query_file`, :func:`read_lightgbm_ranking` - LETOR and
  LightGBM files.
* :func:`candidates` and :class:`Reranker` - from fitted recommenders to ranker input and a
  two-stage recommender.

Queries are given LightGBM's way, ``fit(X, y, group=sizes)``, or as one query id per row
(``group=ids`` or ``qid=ids``); the rows of a query must be contiguous.
"""

from ._base import Ranker, group_offsets
from ._candidates import CandidateSet, Reranker, candidates, pair_features
from ._gbdt import OBJECTIVES, LambdaMART
from ._linear import LINEAR_LOSSES, LinearRanker
from ._io import read_lightgbm_ranking, read_query_file, read_svmlight

__all__ = [
    "Ranker",
    "LambdaMART",
    "OBJECTIVES",
    "LinearRanker",
    "LINEAR_LOSSES",
    "group_offsets",
    "candidates",
    "pair_features",
    "CandidateSet",
    "Reranker",
    "read_svmlight",
    "read_query_file",
    "read_lightgbm_ranking",
]
