"""The bare server of the receiver benchmark: a WSGI app that reads the body and answers 202,
served by the same gunicorn settings as the console (the ceiling of the stack itself)."""


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    body = b'{"buffered": 0, "events": 1}'
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
