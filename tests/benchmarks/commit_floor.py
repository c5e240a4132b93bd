"""The storage floor of the receiver benchmark: N connections (threads, this process) each
committing one buffer-shaped row at a time into a scratch copy of the buffer table (same
columns and indexes), with synchronous commits: what the database's durable commit allows for
N clients that each wait for their own acknowledgement, as the receiver's 202 does.

    python -m tests.benchmarks.commit_floor DATABASE_URL CONNECTIONS SECONDS   → JSON on stdout
"""

import json
import sys
import threading
import time

import psycopg

TABLE = "audit_ingestbufferentry"


def main(url: str, connections: int, seconds: float) -> dict:
    url = url.replace("postgres://", "postgresql://", 1)
    scratch = f"commit_floor_{int(time.time() * 1000) % 10**9}"
    headers = json.dumps({"specversion": "1.0", "id": "x" * 36, "type": "org.kubeflow.serving.inference.request"})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {scratch} (LIKE {TABLE} INCLUDING ALL)")
    counts = [0] * connections

    def run(i: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                conn.execute(f"INSERT INTO {scratch} (project_id, received_at, content_type, headers, body) "  # noqa: S608
                             "VALUES (%s, now(), %s, %s::jsonb, %s)", [1, "application/json", headers, b"x" * 40])
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {scratch}")
    return {"connections": connections, "commits_per_second": round(sum(counts) / seconds, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))
