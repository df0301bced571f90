"""Type stubs of the compiled extension recforge._core (private; use the recforge package)."""

from types import ModuleType

import numpy as np
import numpy.typing as npt

class _TopK(ModuleType):
    def topk_dot(
        self,
        queries: npt.NDArray[np.float32],
        items: npt.NDArray[np.float32],
        k: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        candidates: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def topk_dense(
        self,
        scores: npt.NDArray[np.float32],
        k: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        candidates: npt.NDArray[np.int32] | None = None,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def kernel_name(self) -> str: ...

class _Metrics(ModuleType):
    METRIC_NAMES: tuple[str, ...]
    def ranking_metrics(
        self,
        lists: npt.NDArray[np.int32],
        rel_indptr: npt.NDArray[np.int64],
        rel_indices: npt.NDArray[np.int32],
        rel_data: npt.NDArray[np.float32],
        n_items: int,
        k: int,
        gain: int = 0,
        ap_denominator: int = 0,
        rel_threshold: float = 0.0,
        n_threads: int = 0,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
    def ranking_auc(
        self,
        lists: npt.NDArray[np.int32],
        rel_indptr: npt.NDArray[np.int64],
        rel_indices: npt.NDArray[np.int32],
        rel_data: npt.NDArray[np.float32],
        n_items: int,
        exclude_indptr: npt.NDArray[np.int64] | None = None,
        exclude_indices: npt.NDArray[np.int32] | None = None,
        rel_threshold: float = 0.0,
        n_threads: int = 0,
    ) -> npt.NDArray[np.float64]: ...

topk: _TopK
metrics: _Metrics
