"""The bare server of the receiver-process benchmark: an aiohttp app that reads the body and
answers 202, on the same server settings as ``audit.receiver`` (the ceiling of that stack).

    python -m tests.benchmarks.bare_aiohttp PORT
"""

import sys

from aiohttp import web

BODY = b'{"buffered": 0, "events": 1}'


async def receive(request: web.Request) -> web.Response:
    await request.content.read()
    return web.Response(body=BODY, status=202, content_type="application/json")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post(r"/ingest/kserve/{key:[^/]+}/", receive)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, keepalive_timeout=75)
