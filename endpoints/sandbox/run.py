"""``python -m endpoints.sandbox.run``: the sandbox cluster of ``make run`` — the fake
Kubernetes API server plus the simulated KServe controller, in one process until interrupted.

It writes a kubeconfig so ``kubectl`` (the one in the project's virtualenv) can look at the
simulated cluster: ``.venv/bin/kubectl --kubeconfig var/sandbox.kubeconfig get isvc -A``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from endpoints.sandbox.apiserver import FakeApiServer
from endpoints.sandbox.controller import SandboxController, SandboxSettings


def start_sandbox(*, port: int = 0, token: str | None = None, settings: SandboxSettings | None = None,
                  crds=()) -> tuple[FakeApiServer, SandboxController]:
    server = FakeApiServer(crds=crds, token=token, port=port).start()
    controller = SandboxController(server.store, settings or SandboxSettings()).start()
    return server, controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sandbox cluster: fake Kubernetes API + simulated KServe.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-file", default=None, help="file holding the bearer token clients must send")
    parser.add_argument("--kubeconfig-out", default=None)
    parser.add_argument("--ingress-domain", default="example.com")
    parser.add_argument("--load-seconds", type=float, default=2.0)
    parser.add_argument("--ready-seconds", type=float, default=4.0)
    parser.add_argument("--gpu-capacity", type=int, default=None,
                        help="nvidia.com/gpu available in the simulated cluster (default: unlimited)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    capacity = {"nvidia.com/gpu": args.gpu_capacity} if args.gpu_capacity is not None else {}
    server, controller = start_sandbox(
        port=args.port, token=token,
        settings=SandboxSettings(ingress_domain=args.ingress_domain, load_seconds=args.load_seconds,
                                 ready_seconds=args.ready_seconds, accelerator_capacity=capacity))
    if args.kubeconfig_out:
        server.write_kubeconfig(args.kubeconfig_out)
    print(f"sandbox cluster listening on {server.url}", flush=True)
    stop.wait()
    controller.stop()
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
