"""The load generator of the authorization benchmarks, run in its own process: ext_authz checks
over gRPC (``envoy.service.auth.v3.Authorization/Check``, grpc.aio) or HTTP/1.1 (keep-alive,
asyncio streams), cycling through Envoy-shaped requests for ``duration`` seconds. Prints one
JSON line: rate, p50/p90/p99 in ms, answers by status.

Two ways to load:

* **closed loop** (default): ``streams`` calls always in flight (each sends its next call when
  its last one is answered) — the server's saturated rate; its latency is ``streams ÷ rate``
  on average (Little's law), whatever the server does;
* **paced** (``--rate R``): calls sent on a fixed schedule, R per second spread evenly over the
  ``streams`` (each stream's i-th call is due at ``start + (offset + i × streams) ÷ R``), and
  each call's latency counted from when it was *due*, not when it went out, so a server that
  falls behind is charged for the wait (no coordinated omission). This is the latency a client
  sending R checks per second sees.

``channels`` spreads the streams over that many connections (HTTP/2 for gRPC, as Envoy opens one
per worker thread; for HTTP each stream has its own keep-alive connection).

    python -m tests.benchmarks.check_load grpc --target 127.0.0.1:9000 --checks checks.json --streams 8 --channels 2
    python -m tests.benchmarks.check_load http --target 127.0.0.1:8000 --checks checks.json --prefix /authz/check --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter


def _grpc_requests(checks: list[list[str]], path: str) -> list[bytes]:
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


def _http_requests(checks: list[list[str]], path: str) -> list[bytes]:
    return [(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
             f"Content-Length: 0\r\n\r\n").encode("latin-1") for authorization, host in checks]


class _Grpc:
    def __init__(self, target: str, channels: int):
        import grpc

        # A subchannel pool of its own per channel: otherwise grpcio shares one connection
        # between channels to the same target.
        self.opened = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                       for _ in range(channels)]
        self.calls = [channel.unary_unary("/envoy.service.auth.v3.Authorization/Check") for channel in self.opened]

    async def connect(self, offset: int, request: bytes) -> None:
        await self.calls[offset % len(self.calls)](request)

    async def call(self, offset: int, request: bytes) -> str:
        from envoy.service.auth.v3 import external_auth_pb2

        answer = await self.calls[offset % len(self.calls)](request)
        return str(external_auth_pb2.CheckResponse.FromString(answer).status.code)

    async def close(self) -> None:
        for channel in self.opened:
            await channel.close()


class _Http:
    """One keep-alive HTTP/1.1 connection per stream; answers read by Content-Length."""

    def __init__(self, target: str, channels: int):
        self.host, _, port = target.rpartition(":")
        self.port = int(port)
        self.connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def connect(self, offset: int, request: bytes) -> None:
        self.connections[offset] = await asyncio.open_connection(self.host, self.port)
        await self.call(offset, request)

    async def call(self, offset: int, request: bytes) -> str:
        reader, writer = self.connections[offset]
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return head[9:12].decode()

    async def close(self) -> None:
        for _reader, writer in self.connections.values():
            writer.close()


async def _run(make_client, requests: list[bytes], streams: int, duration: float, rate: float | None) -> dict:
    latencies: list[float] = []
    codes: Counter = Counter()
    client = make_client()  # inside the event loop (grpc.aio binds its channels to it)
    try:
        for offset in range(streams):
            await client.connect(offset, requests[offset % len(requests)])
        started = time.perf_counter()
        stop = started + duration

        async def stream(offset: int) -> None:
            sent = 0
            while True:
                i = offset + sent * streams  # this stream's calls: every streams-th of the sequence
                if rate:
                    due = started + i / rate
                    if due >= stop:
                        return
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                else:
                    due = time.perf_counter()
                    if due >= stop:
                        return
                codes[await client.call(offset, requests[i % len(requests)])] += 1
                latencies.append(time.perf_counter() - due)
                sent += 1

        await asyncio.gather(*(stream(n) for n in range(streams)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 3)

    return {"rps": round(len(latencies) / elapsed), "offered_rps": rate, "p50_ms": pct(0.5), "p90_ms": pct(0.9),
            "p99_ms": pct(0.99), "calls": len(latencies), "codes": dict(codes)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=["grpc", "http"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--checks", required=True, help="JSON list of [authorization, host]")
    parser.add_argument("--path", default="/v1/models/model:predict")
    parser.add_argument("--prefix", default="", help="HTTP: the authorizer's path prefix (/authz/check)")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rate", type=float, default=None, help="paced: checks per second (default: closed loop)")
    options = parser.parse_args()
    with open(options.checks) as handle:
        checks = json.load(handle)
    if options.protocol == "grpc":
        requests = _grpc_requests(checks, options.path)
        client = lambda: _Grpc(options.target, options.channels)  # noqa: E731
    else:
        requests = _http_requests(checks, options.prefix + options.path)
        client = lambda: _Http(options.target, options.channels)  # noqa: E731
    print(json.dumps(asyncio.run(_run(client, requests, options.streams, options.duration, options.rate))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
