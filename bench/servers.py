"""The servers a benchmark loads, each in its own process group, optionally pinned to CPUs: mock-openai (this
checkout or an earlier commit in a git worktree), the floor Flask app, and aimock (Node.js, from npm).

Each records how long it took to answer its first request (start-up) and can report its processes' CPU
time and resident memory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIMOCK_VERSION = "1.43.0"  # @copilotkit/aimock, the fastest peer measured in issue #10
AIMOCK_HOME = Path(os.environ.get("AIMOCK_HOME", Path(tempfile.gettempdir()) / "mock-openai-bench-aimock"))
# aimock answers fixtures by the last user message; the loads ask "n<tokens>" and get that many " word" chunks.
AIMOCK_SIZES = (16, 64, 100, 200, 256, 2048)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, command: list[str], port: int, cwd: Path = ROOT, env=None, cpus: str | None = None):
        self.name, self.port = name, port
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_OPENAI_", "MOCK_GPT_"))}
        if cpus:
            command = ["taskset", "-c", cpus, *command]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.startup_s = self._wait_ready(started)
        time.sleep(0.5)  # every worker booted and idle before anything is measured

    def _wait_ready(self, started: float) -> float:
        request = b"GET /v1/models HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        while time.monotonic() - started < 30:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(request)
                    if sock.recv(12).startswith(b"HTTP/1.1"):
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not start")

    def pids(self) -> list[int]:
        """The process group's processes (gunicorn's master and workers, or node)."""
        return group_pids(self.process.pid)

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.process.pid)

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each process, in MB."""
        sizes = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return sizes

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def group_pids(group: int) -> list[int]:
    """The processes of a process group (a server started in a session of its own: its leader's pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def group_cpu_seconds(group: int) -> float:
    total = 0
    for pid in group_pids(group):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLOCK_TICKS


def start_ours(itl: float = 0, workers: int = 1, cpus: str | None = None, extra=(), env=None) -> Server:
    port = free_port()
    # (the mock-openai command, run by this Python: a packed runtime elsewhere has no console scripts)
    command = [sys.executable, "-m", "app.cli", "-a", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    command += ["--inter-token-latency", str(itl), *extra]
    return Server(f"mock-openai (ITL {itl:g} ms)", command, port, env=env, cpus=cpus)


def start_floor(workers: int = 1, cpus: str | None = None) -> Server:
    port = free_port()
    # -c: plain gunicorn, not this project's gunicorn.conf.py, which gunicorn reads from the working folder by
    # default (its settings, hooks, and the tokenizer it loads before forking, about 110 MB a process)
    command = [sys.executable, "-m", "gunicorn", "-c", os.devnull, "-k", "gevent", "-w", str(workers)]
    command += ["--worker-connections", "20000"]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "4096", "bench.baseline_app:app"]
    return Server("floor (Flask + gunicorn gevent)", command, port, cpus=cpus)


def aimock_available() -> str | None:
    """The path of aimock's command, installing the pinned version with npm first; None (and why) without npm."""
    command = AIMOCK_HOME / "node_modules" / ".bin" / "llmock"
    if command.exists():
        return str(command)
    if shutil.which("npm") is None or shutil.which("node") is None:
        print("bench: npm and node are needed for aimock (apt-get install npm); aimock is skipped", flush=True)
        return None
    AIMOCK_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", f"@copilotkit/aimock@{AIMOCK_VERSION}"],
        cwd=AIMOCK_HOME,
        check=True,
    )
    return str(command)


def start_aimock(latency_ms: float = 0, cpus: str | None = None) -> Server | None:
    command = aimock_available()
    if command is None:
        return None
    fixtures = AIMOCK_HOME / "fixtures.json"
    answers = [{"match": {"userMessage": f"n{n}"}, "response": {"content": " word" * n}} for n in AIMOCK_SIZES]
    fixtures.write_text(json.dumps({"fixtures": answers}))
    port = free_port()
    # -c 5: five characters a chunk, so each " word" is one content event, as one token is in the others.
    argv = [command, "-p", str(port), "-f", str(fixtures), "-c", "5", "-l", str(latency_ms), "--log-level", "silent"]
    argv += ["--journal-max", "1000"]
    return Server(f"aimock {AIMOCK_VERSION} (latency {latency_ms:g} ms)", argv, port, cpus=cpus)


def worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mock-openai-bench-")) / ref.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True, capture_output=True
    )
    return folder


def remove_worktree(folder: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
    shutil.rmtree(folder.parent, ignore_errors=True)


def start_checkout(folder: Path, workers: int, cpus: str | None = None, env=None) -> Server:
    """An earlier commit, from its own folder: gunicorn with that commit's gunicorn.conf.py, as its README
    runs it, configured through the environment names every version reads."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    settings = {
        "PYTHONPATH": str(folder),
        "MOCK_OPENAI_SERVER_HOST": "127.0.0.1",
        "MOCK_OPENAI_SERVER_PORT": str(port),
        "MOCK_OPENAI_SERVER_WORKERS": str(workers),
        "MOCK_OPENAI_RESPONSES_INTER_TOKEN_LATENCY_MS": "0",
        **(env or {}),
    }
    return Server(f"mock-openai at {folder.name}", command, port, cwd=folder, env=settings, cpus=cpus)
