"""The user tower as served: saved as a static graph (paddle.jit.save) with each version and run by
Paddle's inference predictor, faster than dygraph; a version saved without the graph is converted."""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.model import USER_IDS, TwoTower
from ml.paddle_setup import paddle

PREFIX = "user_encoder"  # user_encoder.json (the program) and .pdiparams: the names saved versions have
SEQUENCE_KEYS = ("history", "history_rating")  # (batch, history_length); every other input is (batch,)


def save_user_tower(model: TwoTower, config: TrainConfig, directory: Path) -> None:
    """Write the user tower of a model trained with config as a static graph into a directory."""
    from paddle.static import InputSpec

    # One dict of named inputs, as the tower reads them: the saved graph's inputs take their names.
    keys = (*USER_IDS, *SEQUENCE_KEYS, "gap") if config.gap_feature else (*USER_IDS, *SEQUENCE_KEYS)
    specs = {
        key: InputSpec([None, config.history_length] if key in SEQUENCE_KEYS else [None], "int64", key)
        for key in keys
    }
    model.eval()
    paddle.jit.save(model.user_tower, str(directory / PREFIX), input_spec=[specs])


class UserPredictor:
    """Encodes users with the inference predictor of a saved user tower, a clone of it (sharing the
    weights) a thread: a predictor's buffers are its own, and no encode waits for another's lock."""

    def __init__(self, directory: Path, config: TrainConfig) -> None:
        from paddle import inference

        prefix = directory / PREFIX
        settings = inference.Config(f"{prefix}.json", f"{prefix}.pdiparams")
        settings.disable_gpu()
        settings.disable_mkldnn()  # oneDNN makes it no faster than dygraph
        settings.disable_glog_info()
        settings.set_cpu_math_library_num_threads(config.num_threads)
        self._predictor = inference.create_predictor(settings)
        self._keys = self._predictor.get_input_names()  # the inputs the saved graph reads
        self._clones = threading.local()
        self._lock = threading.Lock()  # around clone(), once per thread

    @classmethod
    def of_model(cls, model: TwoTower, config: TrainConfig) -> UserPredictor:
        """Return the predictor of a model saved in a temporary directory that lives as long as it."""
        directory = Path(tempfile.mkdtemp(prefix="movierec-user-encoder-"))
        try:
            save_user_tower(model, config, directory)
            encoder = cls(directory, config)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        weakref.finalize(encoder, shutil.rmtree, directory, True)
        return encoder

    def __call__(self, arrays: Mapping[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        """Return (batch, dim) unit vectors of the users whose inputs are `arrays` (ml.features)."""
        predictor = getattr(self._clones, "predictor", None)
        if predictor is None:
            with self._lock:
                predictor = self._clones.predictor = self._predictor.clone()
        for key in self._keys:
            predictor.get_input_handle(key).copy_from_cpu(np.ascontiguousarray(arrays[key], dtype=np.int64))
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
