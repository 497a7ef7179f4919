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
