"""The sandbox's model servers: one small ``kserve.Model`` per model format on KServe's own Python
model server (PyPI ``kserve``), as KServe's sklearn, xgboost and lightgbm images run them.

Runs inside the runtime virtualenv (``endpoints.sandbox.serving.runtimes``), never in the
console's interpreter: ``<venv>/bin/python model_server.py --model_name iris --model_dir
/path/to/download --model_format sklearn --http_port 8080``.

- The model file is found in the directory the storage initializer filled, by the names those
  images accept: sklearn ``*.joblib``/``*.pkl``/``*.pickle``; xgboost ``*.bst``/``*.json``/
  ``*.ubj``; lightgbm ``*.bst``/``*.txt``. None, or more than one, fails the load with a message.
- Both protocols of the ModelServer's REST server answer: V1 ``/v1/models/<name>:predict``
  (``instances``) and the Open Inference Protocol ``/v2/models/<name>/infer`` (``inputs``);
  health at ``/v1/models/<name>`` and ``/v2/models/<name>/ready``.
- ``kserve.ModelServer`` binds its REST port to 0.0.0.0: here it is bound to 127.0.0.1, and
  the gRPC server (which binds [::]) is off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PATTERNS = {
    "sklearn": ("*.joblib", "*.pkl", "*.pickle"),
    "xgboost": ("*.bst", "*.json", "*.ubj"),
    "lightgbm": ("*.bst", "*.txt"),
}


class ModelFileError(RuntimeError):
    pass


def model_file(model_dir: str, model_format: str) -> Path:
    root = Path(model_dir)
    found = sorted({path for pattern in PATTERNS[model_format] for path in root.rglob(pattern) if path.is_file()})
    if not found:
        raise ModelFileError(f"no {model_format} model file ({', '.join(PATTERNS[model_format])}) in {model_dir}")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in found)
        raise ModelFileError(f"more than one {model_format} model file in {model_dir}: {names}")
    return found[0]


def build_model(name: str, model_dir: str, model_format: str):
    import kserve
    from kserve.utils.utils import get_predict_input, get_predict_response

    class FormatModel(kserve.Model):
        """A model of ``model_format`` loaded from ``model_dir``."""

        def __init__(self):
            super().__init__(name)
            self.booster = None

        def load(self) -> bool:
            path = model_file(model_dir, model_format)
            if model_format == "sklearn":
                if path.suffix == ".joblib":
                    import joblib
                    self.booster = joblib.load(path)
                else:
                    import pickle
                    with path.open("rb") as handle:
                        self.booster = pickle.load(handle)  # noqa: S301 - the model the user registered
            elif model_format == "xgboost":
                import xgboost
                self.booster = xgboost.Booster(params={"nthread": 1}, model_file=str(path))
            else:
                import lightgbm
                self.booster = lightgbm.Booster(model_file=str(path))
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None):
            inputs = get_predict_input(payload)
            try:
                if model_format == "xgboost":
                    import xgboost
                    result = self.booster.predict(xgboost.DMatrix(inputs))
                else:
                    result = self.booster.predict(inputs)
            except Exception as exc:  # noqa: BLE001 - any model error is the caller's bad input here
                raise kserve.errors.InferenceError(str(exc)) from exc
            return get_predict_response(payload, result, self.name)

    return FormatModel()


def serve(name: str, model_dir: str, model_format: str, http_port: int, host: str = "127.0.0.1") -> None:
    import kserve
    from kserve import model_server
    from kserve.protocol.rest import server as rest

    class LoopbackRESTServer(rest.RESTServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = host  # the server object holds this same config

    model_server.RESTServer = LoopbackRESTServer
    model = build_model(name, model_dir, model_format)
    model.load()
    kserve.ModelServer(http_port=http_port, enable_grpc=False, workers=1).start([model])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A sandbox model server (KServe's Python ModelServer).",
                                     allow_abbrev=False)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_format", choices=sorted(PATTERNS), required=True)
    parser.add_argument("--http_port", type=int, default=8080)
    args, _ = parser.parse_known_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        serve(args.model_name, args.model_dir, args.model_format, args.http_port)
    except ModelFileError as exc:
        print(f"model server: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
