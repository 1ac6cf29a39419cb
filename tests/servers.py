"""Real server processes for end-to-end tests: daphne and Celery workers, on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # Each server process decides its parts from these alone.
    for name in ("DATABASE_URL", "REDIS_URL", "INFERENCE_MODE", "INFERENCE_ENGINE", "MODEL_ID"):
        env.pop(name, None)
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="glimpse.settings",
        LITE_MODEL_CACHE=str(REPO / "data" / "models" / "smollm2"),
        RUN_STARTUP_TASKS="1",
        REVIEW_SAMPLE_RATE="0",  # no random review items unless a test asks for them
    )
    env.update(overrides)
    return env


def run_manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115  (closed in stop)
        # A new session so stop() can end the whole group (Celery forks children).
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Like a machine losing power: no shutdown handlers run."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def start_daphne(env: dict[str, str], log_dir: Path) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "glimpse.asgi:application"],
        env,
        log_dir / f"daphne-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.alive(), process.log()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.stop()
    raise AssertionError(f"daphne did not answer /healthz in 60 s:\n{process.log()}")


def wait_for_log(process: Process, text: str, *, timeout: float, what: str) -> Process:
    """Return the process once its log shows `text`; fail with the log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.alive(), process.log()
        if text in process.log():
            return process
        time.sleep(0.2)
    process.stop()
    raise AssertionError(f"{what} not ready in {timeout:.0f} s:\n{process.log()}")


def start_celery_worker(
    env: dict[str, str],
    log_dir: Path,
    *,
    name: str = "gpu1",
    queues: str = "inference",
    concurrency: int = 4,
    wait_for: str = "ready.",
) -> Process:
    process = Process(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "glimpse",
            "worker",
            "-Q",
            queues,
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        ],
        env,
        # A worker restarted under the same name gets a log of its own.
        log_dir / f"celery-{name}-{time.monotonic_ns()}.log",
    )
    return wait_for_log(process, wait_for, timeout=90, what=f"celery worker {name}")


@contextmanager
def running(*processes: Process):
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
