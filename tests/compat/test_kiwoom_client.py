"""The sandbox's Kiwoom listeners driven by Kiwoom's own published client (``kiwoom`` package of PyPI ``kwcli``,
Kiwoom-Securities/Kiwoom-REST-API), unmodified: only its base URLs are set, through its own settings ``MOCK`` /
``W_MOCK``. Token, ka10001, ka10081 and ka10080 paging with cont-yn/next-key, REAL 0B/0D decoded with the client's
own FID tables, the condition list.

The client needs Python 3.13. It is installed once per machine, pinned (``kwcli-requirements.txt``), in a venv
outside the repository: ``$HOGA_COMPAT_CACHE`` (default ``~/.cache/hoga/compat``). The interpreter is
``$HOGA_PY313``, else ``python3.13`` on PATH, else pyenv's ``~/.pyenv/versions/3.13*`` (or ``/root/.pyenv``); without
one the test is skipped and says so. The driver (``kwcli_driver.py``) runs in that venv as a subprocess.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.sandbox.server import SandboxThread
from tests.sandbox.kiwoom.conftest import fresh_pair, rest, set_clock, start_box

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "kwcli-requirements.txt"
DRIVER = HERE / "kwcli_driver.py"
REPLAY_DAY = "20260220"


def find_py313() -> str | None:
    """A Python >= 3.13 interpreter: $HOGA_PY313, python3.13 on PATH, pyenv's 3.13 builds."""
    candidates = [os.environ.get("HOGA_PY313", ""), shutil.which("python3.13") or ""]
    for root in {Path.home() / ".pyenv", Path("/root/.pyenv")}:
        candidates += [str(p) for p in sorted(root.glob("versions/3.1[3-9]*/bin/python3"), reverse=True)]
    for path in filter(None, candidates):
        try:
            out = subprocess.run([path, "-c", "import sys; print(sys.version_info >= (3, 13))"], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.stdout.strip() == "True":
            return path
    return None


def client_python() -> Path:
    """The venv's interpreter, the venv created and the pinned client installed on first use (under a lock)."""
    python = find_py313()
    if python is None:
        pytest.skip("Kiwoom's client (kwcli) needs Python >= 3.13: set HOGA_PY313 or install python3.13")
    cache = Path(os.environ.get("HOGA_COMPAT_CACHE") or Path.home() / ".cache" / "hoga" / "compat")
    cache.mkdir(parents=True, exist_ok=True)
    pins = REQUIREMENTS.read_bytes()
    venv = cache / f"kwcli-{hashlib.sha256(pins).hexdigest()[:12]}"
    stamp = venv / "hoga-installed"
    with open(cache / "kwcli.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            assert pip.returncode == 0, f"pip install of the pinned kwcli failed:\n{pip.stderr[-3000:]}"
            stamp.write_text("ok\n")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxThread]:
    running = start_box(speed=30.0)
    try:
        set_clock(running, "10:30:00")
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def driven(box: SandboxThread) -> dict:
    python = client_python()
    appkey, secretkey = fresh_pair("mock")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        MOCK=rest(box),
        W_MOCK=f"ws://127.0.0.1:{box.ports.kiwoom_ws}",
        KWCLI_APPKEY=appkey,
        KWCLI_SECRETKEY=secretkey,
        KIWOOM_TOKEN_STORE="memory",
        HOME=str(Path(os.environ.get("HOGA_COMPAT_CACHE") or Path.home() / ".cache" / "hoga" / "compat")),
    )
    out = subprocess.run(
        [str(python), str(DRIVER), REPLAY_DAY], capture_output=True, text=True, timeout=180, env=env, cwd="/"
    )
    assert out.returncode == 0, f"driver failed:\n{out.stderr[-4000:]}"
    return json.loads(out.stdout)


def test_token_and_basic_info(driven: dict) -> None:
    assert len(driven["token"]) > 20
    info = driven["ka10001"]
    assert info["stk_cd"] == "005930" and info["stk_nm"] == "삼성전자" and abs(int(info["cur_prc"])) > 0


def test_daily_and_minute_charts_page_with_cont_yn_and_next_key(driven: dict) -> None:
    daily = driven["ka10081"]
    assert len(daily) == 3 and all(p["cont_yn"] == "Y" and p["next_key"] for p in daily)
    dates = [d for p in daily for d in p["dates"]]
    assert dates[0] == REPLAY_DAY and dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates)
    assert all(p["dates"][0] == prev["next_key"] for prev, p in zip(daily, daily[1:], strict=False))
    minute = driven["ka10080"]
    assert len(minute) >= 2 and minute[0]["cont_yn"] == "Y"
    times = [t for p in minute for t in p["times"]]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    assert all(p["times"][0] == prev["next_key"] for prev, p in zip(minute, minute[1:], strict=False))


def test_realtime_decoded_with_the_clients_own_fid_tables(driven: dict) -> None:
    rt = driven["realtime"]
    assert rt["reg"] == {"trnm": "REG", "return_code": 0, "return_msg": ""}
    assert (len(rt["schema"]["0B"]), len(rt["schema"]["0D"])) == (43, 163)
    for typ in ("0B", "0D"):
        for entry in rt["entries"][typ]:
            assert entry["code"] == "005930" and "unknown" not in entry  # every FID is one the client knows
            assert list(entry["data"]) == rt["schema"][typ]  # all of them, in the spec's order
    trades = [e["data"] for e in rt["entries"]["0B"]]
    volumes = [int(t["누적거래량"]) for t in trades]
    assert volumes == sorted(volumes) and all(t["거래소구분"] == "1" and t["장구분"] == "2" for t in trades)
    for book in (e["data"] for e in rt["entries"]["0D"]):
        assert int(book["매도호가총잔량"]) == sum(int(book[f"매도호가수량{i}"]) for i in range(1, 11))
        assert abs(int(book["매도호가1"])) > abs(int(book["매수호가1"])) > 0


def test_condition_list(box: SandboxThread, driven: dict) -> None:
    cnsrlst = driven["realtime"]["cnsrlst"]
    assert cnsrlst["return_code"] == 0
    rules = box.server.core.conditions.conditions.rules  # type: ignore[union-attr]
    assert cnsrlst["data"] == [[r.seq, r.name] for r in rules] and len(rules) > 0
