"""The deployment files agree with each other: docker-compose.yml runs the same processes as the
Procfile behind `make run`, and every setting is documented in .env.example and the README."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def _settings_variables() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "config" / "settings").glob("*.py"))
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', text))


def _script_variables() -> set[str]:
    text = (ROOT / "bin" / "hoga-process").read_text()
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", text)) - {"HOGA_PROCESS_ROLE"}


def test_compose_parses_and_runs_the_procfile_processes():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    procfile = _procfile()

    app_services = {name: svc for name, svc in services.items() if svc.get("image") == "hoga:latest"}
    long_running = {name: svc for name, svc in app_services.items() if svc.get("restart") != "no"}

    assert {"postgres", "redis"} <= set(services)
    assert set(long_running) == set(procfile)
    for name, service in long_running.items():
        # Both start the role through bin/hoga-process (the Dockerfile's ENTRYPOINT).
        assert service["command"] == [name]
        assert procfile[name] == f"bin/hoga-process {name}"
        assert service["build"] == "."
    assert app_services["migrate"]["command"] == ["migrate"]


def test_dockerfile_entrypoint_is_the_process_launcher():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert 'ENTRYPOINT ["bin/hoga-process"]' in dockerfile
    assert "requirements/prod.txt" in dockerfile
    assert re.search(r"^USER hoga$", dockerfile, re.M)
    # The pages' vendored libraries are built in the image as `make static` builds them locally.
    assert "scripts/build_static.py" in dockerfile and "COPY --from=static" in dockerfile
    assert "build_static.py" in (ROOT / "Makefile").read_text()


def test_process_launcher_knows_every_role():
    script = (ROOT / "bin" / "hoga-process").read_text()

    for role in [*_procfile(), "migrate"]:
        assert re.search(rf"^\s+{role}\)$", script, re.M), role
    assert "--queues feed" in script and "--concurrency 1" in script
    assert "--task-events" in script
    assert "--basic-auth" in script


def test_every_variable_is_in_env_example_and_readme():
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))

    variables = _settings_variables() | _script_variables()
    assert variables - documented == set()
    assert {v for v in variables if f"`{v}`" not in readme} == set()


def test_requirements_are_pinned():
    for name in ("base.txt", "dev.txt", "prod.txt"):
        for line in (ROOT / "requirements" / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert "==" in line, f"{name}: {line} is not pinned"


def _database_settings(**env) -> dict:
    """The ``default`` database settings a process started with ``env`` would use (a fresh interpreter)."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(json.dumps({'max_age': d['CONN_MAX_AGE'], "
        "'pool': d['OPTIONS'].get('pool')}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("HOGA_PROCESS_ROLE", "DB_CONN_MAX_AGE")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_web_processes_pool_their_database_connections_and_workers_keep_theirs():
    assert _database_settings(HOGA_PROCESS_ROLE="web") == {
        "max_age": 0, "pool": {"min_size": 2, "max_size": 10, "timeout": 10.0},
    }  # fmt: skip
    assert _database_settings(HOGA_PROCESS_ROLE="web", DB_POOL_MAX_SIZE="0") == {"max_age": 0, "pool": None}
    assert _database_settings(HOGA_PROCESS_ROLE="worker") == {"max_age": 60, "pool": None}
    assert _database_settings() == {"max_age": 0, "pool": None}  # manage.py commands, tests
