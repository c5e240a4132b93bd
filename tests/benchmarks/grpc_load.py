"""A gRPC load generator for ``envoy.service.auth.v3.Authorization/Check`` (grpc.aio), run in
its own process by the benchmarks: ``streams`` concurrent calls in flight, spread over
``channels`` HTTP/2 connections (Envoy opens one per worker thread and multiplexes its checks
on it), cycling through Envoy-shaped requests, for ``duration`` seconds. Prints one JSON line:
rate, p50/p90/p99 in ms, answers by status.

    python -m tests.benchmarks.grpc_load --target 127.0.0.1:9000 --checks checks.json --streams 8 --channels 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter


def _requests(checks: list[list[str]], path: str) -> list[bytes]:
    from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

    out = []
    for authorization, host in checks:
        http = attribute_context_pb2.AttributeContext.HttpRequest(
            method="POST", host=host, path=path, protocol="HTTP/1.1", scheme="http",
            headers={":authority": host, ":method": "POST", ":path": path, "authorization": authorization,
                     "content-type": "application/json", "content-length": "24"})
        out.append(external_auth_pb2.CheckRequest(attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http))).SerializeToString())
    return out


async def _run(target: str, requests: list[bytes], streams: int, duration: float, channels: int = 1) -> dict:
    import grpc
    from envoy.service.auth.v3 import external_auth_pb2

    latencies: list[float] = []
    codes: Counter = Counter()
    # A subchannel pool of its own per channel: otherwise grpcio shares one connection between
    # channels to the same target.
    opened = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
              for _ in range(channels)]
    try:
        checks = [channel.unary_unary("/envoy.service.auth.v3.Authorization/Check") for channel in opened]
        for check in checks:
            await check(requests[0])  # connect
        stop = time.perf_counter() + duration

        async def stream(offset: int) -> None:
            check = checks[offset % channels]
            i = offset
            while time.perf_counter() < stop:
                started = time.perf_counter()
                answer = await check(requests[i % len(requests)])
                latencies.append(time.perf_counter() - started)
                codes[external_auth_pb2.CheckResponse.FromString(answer).status.code] += 1
                i += streams

        started = time.perf_counter()
        await asyncio.gather(*(stream(n) for n in range(streams)))
        elapsed = time.perf_counter() - started
    finally:
        for channel in opened:
            await channel.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 3)

    return {"rps": round(len(latencies) / elapsed), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "calls": len(latencies), "codes": {str(k): v for k, v in codes.items()}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--checks", required=True, help="JSON list of [authorization, host]")
    parser.add_argument("--path", default="/v1/models/model:predict")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--channels", type=int, default=1)
    options = parser.parse_args()
    with open(options.checks) as handle:
        requests = _requests(json.load(handle), options.path)
    print(json.dumps(asyncio.run(_run(options.target, requests, options.streams, options.duration, options.channels))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
