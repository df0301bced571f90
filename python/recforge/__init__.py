"""recforge: recommender systems from raw interactions to an evaluated recommender.

The package is a typed Python layer over a C++ core. Start with :class:`Interactions`, split it
with :mod:`recforge.split`, fit a recommender and score it with :func:`evaluate`::

    import recforge as rf

    data = rf.datasets.make_synthetic(random_state=0)
    train, test = rf.split.random_holdout(data, test_fraction=0.2, random_state=0)
    model = rf.Popularity().fit(train)
    print(rf.evaluate(model, train, test, k=10))
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import (
    bandits,
    beyond_accuracy,
    datasets,
    evaluation,
    factorization,
    metrics,
    ope,
    pipeline,
    plot,
    ranking,
    retrieval,
    serving,
    significance,
    simulation,
    split,
)
from .base import NotFittedError, Recommender
from .bandits import ColdStartRecommender
from .baselines import Popularity, Random
from .data import Interactions
from .evaluation import compare, evaluate
from .factorization import ALSWR, NMF, SVD, SVDpp
from .factorization import ALS, BPR, EASE, LMF
from .pipeline import Pipeline
from .ranking import LambdaMART, LinearRanker, Reranker
from . import neighbors
from . import content, hybrid
from .content import ContentRecommender, FeatureEncoder
from .factorization import FeatureFactorization
from .hybrid import SwitchingHybrid, WeightedHybrid
from .neighbors import (
    BaselineOnly,
    ItemKNN,
    KNNBaseline,
    KNNBasic,
    KNNWithMeans,
    KNNWithZScore,
    UserKNN,
)

try:
    __version__ = version("recforge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Interactions",
    "Recommender",
    "NotFittedError",
    "Popularity",
    "Random",
    "ItemKNN",
    "UserKNN",
    "BaselineOnly",
    "KNNBasic",
    "KNNWithMeans",
    "KNNWithZScore",
    "KNNBaseline",
    "SVD",
    "SVDpp",
    "NMF",
    "ALSWR",
    "ALS",
    "BPR",
    "LMF",
    "EASE",
    "LambdaMART",
    "LinearRanker",
    "Reranker",
    "ColdStartRecommender",
    "ContentRecommender",
    "FeatureEncoder",
    "FeatureFactorization",
    "WeightedHybrid",
    "SwitchingHybrid",
    "content",
    "hybrid",
    "evaluate",
    "Pipeline",
    "compare",
    "bandits",
    "beyond_accuracy",
    "datasets",
    "evaluation",
    "factorization",
    "metrics",
    "neighbors",
    "ope",
    "pipeline",
    "plot",
    "ranking",
    "serving",
    "significance",
    "simulation",
    "retrieval",
    "split",
    "__version__",
]
