"""Scaling, on a machine with many cores (issue #25's device runs): workers, instances, and start-up.

    python bench/scale.py                 # every part, 5 s a load; about 3 minutes on 16 cores
    python bench/scale.py --only workers,instances --duration 6

The servers run on the lower half of the cores and the load (wrk, a thread a core) on the upper half; each
figure is one load in one run, and each ratio is between two figures of the same run (two such machines have
differed by 30 %). The parts:

- ``workers``: mock-openai and the floor (a do-nothing Flask app on plain gunicorn gevent) with one worker and
  with S workers (S = the server's cores, at most 8), pinned to as many cores; mock-openai with S workers and
  the journal off. Bodies (max_tokens 16, 256 connections) and unpaced streams (64 tokens, 1,000 at once).
- ``stored``: mock-openai with one worker and with S, the same loads to the Responses API, which stores every
  response (in the shared SQLite file every worker writes, in one transaction for the responses a worker makes
  at the same time).
- ``redis``: one worker on one core, with the one-host backend and with Redis (redis-server on a core of its
  own).
- ``instances``: one instance and three instances of one worker each, each on a core of its own, on one Redis
  (its own core), behind nginx (two cores): the same path both times, so the ratio is what scaling out gives.
- ``startup``: ``mock-openai -w N`` (N = every core): the time to its first answer, and each worker's memory.
- ``contention``: what workers share on one host (the prompt cache, rate limits, sequence counts) used by one
  process and by S processes at once, one a core (``bench/contention.py``).

Prints a JSON line a figure and a table of the ratios; with ``$OUT`` set, writes ``scale.json`` and
``scale.md`` there. Needs wrk, taskset, redis-server and nginx (``$WRK``, ``$REDIS_SERVER``, ``$NGINX`` name
them where they are not on the PATH: bench/device/pack.sh packs them all for a machine without a network).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
import contention  # noqa: E402
import loads  # noqa: E402
import startup  # noqa: E402
from servers import free_port, group_cpu_seconds, start_floor, start_ours  # noqa: E402

PARTS = ("workers", "stored", "redis", "instances", "startup", "contention")
BODY_CONNECTIONS, BODY_TOKENS = 256, 16
STREAMS, STREAM_TOKENS = 1000, 64
INSTANCES = 3

NGINX_CONF = """
worker_processes {processes};
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream mock {{
        {servers}
        keepalive 512;  # connections to the instances kept open, as a deployment keeps them
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;  # server-sent events pass as they are written
        }}
    }}
}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"some of: {', '.join(PARTS)}")
    parser.add_argument("--duration", type=int, default=5, help="seconds a load")
    parser.add_argument("--server-cores", type=int, help="the servers' cores (default: half of them)")
    args = parser.parse_args()
    parts = args.only.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    cores = os.cpu_count() or 2
    server_cores = args.server_cores or max(1, cores // 2)
    loads.LOAD_CPUS = f"{server_cores}-{cores - 1}" if cores - server_cores > 1 else str(cores - 1)
    loads.WRK_THREADS = max(1, min(8, cores - server_cores))
    run = Run(args.duration, server_cores)
    print(f"scale: {cores} cores, servers on 0-{server_cores - 1}, load on {loads.LOAD_CPUS}", flush=True)
    for part in parts:
        getattr(run, part)()
    report = run.report(cores)
    print(report)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "scale.json").write_text(json.dumps({"cores": cores, "figures": run.figures}, indent=1))
        (Path(out) / "scale.md").write_text(report)
    return 0


class Run:
    def __init__(self, duration: int, server_cores: int):
        self.duration, self.server_cores = duration, server_cores
        self.figures: list[dict] = []
        self.ratios: list[tuple[str, str, float | None]] = []  # (what, load, ratio)

    # --- the parts ----------------------------------------------------------------------------------------------
    def workers(self) -> None:
        many = min(8, self.server_cores)
        counts = sorted({1, many})
        ours = {w: self._load_both(f"ours, {_workers(w)}", lambda w=w: start_ours(0, w, _cores(w))) for w in counts}
        floor = {w: self._load_both(f"floor, {_workers(w)}", lambda w=w: start_floor(w, _cores(w))) for w in counts}
        off = self._load_both(
            f"ours, {_workers(many)}, journal off", lambda: start_ours(0, many, _cores(many), ["--no-journal"])
        )
        for load in ("bodies", "streams"):
            self._ratio(f"ours, {_workers(many)} / 1", load, ours[many], ours[1])
            self._ratio(f"floor, {_workers(many)} / 1", load, floor[many], floor[1])
            self._ratio(f"ours, {_workers(many)}: journal on / off", load, ours[many], off)

    def stored(self) -> None:
        many = min(8, self.server_cores)
        figures = {}
        for w in sorted({1, many}):
            start = lambda w=w: start_ours(0, w, _cores(w))  # noqa: E731
            figures[w] = self._load_both(f"ours, {_workers(w)}, Responses API", start, "responses")
        for load in ("bodies", "streams"):
            self._ratio(f"ours, {_workers(many)} / 1, Responses API (stored)", load, figures[many], figures[1])

    def redis(self) -> None:
        with Redis(_cores(1, first=1)) as redis:
            env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis.url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}
            one_host = self._load_both("ours, one worker, one-host backend", lambda: start_ours(0, 1, "0"))
            on_redis = self._load_both("ours, one worker, Redis", lambda: start_ours(0, 1, "0", env=env))
        for load in ("bodies", "streams"):
            self._ratio("Redis / one-host, one worker", load, on_redis, one_host)

    def instances(self) -> None:
        figures = {}
        with Redis(_cores(1, first=INSTANCES)) as redis:
            for count in (1, INSTANCES):
                env = {"MOCK_OPENAI_SHARED_REDIS_URL": redis.url, "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}
                name = f"{count} instance{'s' if count > 1 else ''} of one worker, on Redis, behind nginx"
                figures[count] = self._load_both(name, lambda count=count, env=env: Cluster(count, env, redis))
        for load in ("bodies", "streams"):
            self._ratio(f"{INSTANCES} instances / 1", load, figures[INSTANCES], figures[1])

    def startup(self) -> None:
        workers = os.cpu_count() or 2
        figure = {"server": f"ours, {_workers(workers)}", "load": "start-up", **startup.measure(workers)}
        self.figures.append(figure)
        print(json.dumps(figure), flush=True)

    def contention(self) -> None:
        many = min(8, self.server_cores)
        for operation in contention.OPERATIONS:
            rates = {n: contention.rate(operation, list(range(n)), self.duration) for n in sorted({1, many})}
            figure = {"server": f"shared state, {operation}", "load": "calls", "one": round(rates[1])}
            figure["many"] = round(rates[many])
            self.figures.append(figure)
            print(json.dumps(figure), flush=True)
            self.ratios.append((f"{operation}, {many} processes / 1", "calls", round(rates[many] / rates[1], 2)))

    # --- measuring ----------------------------------------------------------------------------------------------
    def _load_both(self, name: str, start, api: str = "chat") -> dict:
        """Bodies and unpaced streams against one server; {load: figure}."""
        server = start()
        found = {}
        try:
            for load in ("bodies", "streams"):
                if load == "bodies":
                    figure = loads.wrk_bodies(server, BODY_TOKENS, BODY_CONNECTIONS, self.duration, api=api)
                else:
                    figure = loads.wrk_streams(server, STREAM_TOKENS, STREAMS, self.duration, api=api)
                    if figure["bad"]:
                        figure["failed"] = f"{figure['bad']} streams incomplete or wrong"
                figure = {"server": name, "load": load, **_rounded(figure)}
                self.figures.append(figure)
                found[load] = figure
                print(json.dumps(figure), flush=True)
        finally:
            server.stop()
        return found

    def _ratio(self, what: str, load: str, now: dict, base: dict) -> None:
        key = "rps" if load == "bodies" else "chunks_per_s"
        a, b = now[load].get(key), base[load].get(key)
        self.ratios.append((what, load, round(a / b, 2) if a and b else None))

    def report(self, cores: int) -> str:
        lines = [f"{cores} cores; servers on {self.server_cores}, load on the rest; {self.duration} s a load", ""]
        lines += ["| server | load | req/s | content chunks/s | p99 ms | server cores used | errors |"]
        lines += ["|---|---|---:|---:|---:|---:|---:|"]
        for f in self.figures:
            if f["load"] in ("start-up", "calls"):
                continue
            chunks = f.get("chunks_per_s")
            lines.append(
                f"| {f['server']} | {f['load']} | {f['rps']:.0f} | {'' if chunks is None else f'{chunks:.0f}'} | "
                f"{f['p99']:.0f} | {f['server_cpu']:.2f} | {f['errors'] + (f.get('bad') or 0)} |"
            )
        lines += ["", "| ratio | load | |", "|---|---|---:|"]
        lines += [f"| {what} | {load} | {ratio} |" for what, load, ratio in self.ratios]
        for f in self.figures:
            if f["load"] == "start-up":
                figures = {k: v for k, v in f.items() if k not in ("server", "load")}
                lines += ["", f"start-up, {f['server']}: {json.dumps(figures)}"]
        return "\n".join(lines)


def _workers(count: int) -> str:
    return "one worker" if count == 1 else f"{count} workers"


def _cores(count: int, first: int = 0) -> str:
    """``count`` cores from ``first`` (where the machine has too few, the last ones again)."""
    last = (os.cpu_count() or 2) - 1
    return ",".join(str(min(core, last)) for core in range(first, first + count))


def _rounded(figure: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figure.items()}


class Redis:
    """A real redis-server, saving nothing, pinned to ``cores``."""

    def __init__(self, cores: str):
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="mock-openai-scale-redis-")
        binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
        command = ["taskset", "-c", cores, binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self.folder, "--maxclients", "10000"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        _wait_for_port(self.port, self.process, "redis-server")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


class Cluster:
    """``count`` instances of one worker, each on a core of its own, on one Redis, behind nginx: measured as one
    server (its CPU is the instances', nginx's and Redis's)."""

    def __init__(self, count: int, env: dict, redis: Redis):
        self.name = f"{count} instances behind nginx"
        self.redis = redis
        self.instances = []
        try:
            for i in range(count):
                self.instances.append(start_ours(0, 1, _cores(1, first=i), env=env))
            self.folder = Path(tempfile.mkdtemp(prefix="mock-openai-scale-nginx-"))
            self.port = free_port()
            servers = " ".join(f"server 127.0.0.1:{s.port};" for s in self.instances)
            conf = self.folder / "nginx.conf"
            conf.write_text(NGINX_CONF.format(processes=2, folder=self.folder, servers=servers, port=self.port))
            binary = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
            command = ["taskset", "-c", _cores(2, first=INSTANCES + 1), binary, "-e", "stderr", "-p", str(self.folder)]
            command += ["-c", str(conf), "-g", "daemon off;"]
            self.nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
            _wait_for_port(self.port, self.nginx, "nginx")
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        others = group_cpu_seconds(self.nginx.pid) + group_cpu_seconds(self.redis.process.pid)
        return sum(s.cpu_seconds() for s in self.instances) + others

    def stop(self) -> None:
        for server in self.instances:
            server.stop()
        nginx = getattr(self, "nginx", None)
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
            shutil.rmtree(self.folder, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{name} did not start")


if __name__ == "__main__":
    sys.exit(main())
