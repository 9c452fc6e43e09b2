"""A hub a classroom shares: two students A and B on one real local hub (`make local`), each in
a container of their own. Everything here is tried from A's own kernel, through A's browser
session, as a student would: B's home, B's server's environment and processes, the hub's
secrets and the pool's devices are out of reach; memory beyond the limit kills only A's kernel;
a teacher's group gets more; idle servers are culled with their files kept; bans and quotas
hold inside the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from tests.localhub import LocalHub, Student, browser

pytestmark = pytest.mark.slow

A = "a1" * 20
B = "b2" * 20
TEACHER = "c3" * 20
MEMORY_LIMIT = 400 * 2**20
SETTINGS = {
    "servers": {
        "memory": "400M",
        "processes": 200,
        "idle_timeout": 0,
        "kernel_idle_timeout": 0,
        "groups": {"teachers": {"members": [TEACHER], "memory": "800M", "cpu": 2}},
    }
}


@pytest.fixture(scope="module")
def hub(zfs_daemon):
    hub = LocalHub("classroom", 18130, SETTINGS)
    try:
        hub.up()
        yield hub
    finally:
        hub.destroy()


@pytest.fixture(scope="module")
def chromium(hub):
    with browser() as chromium:
        yield chromium


def _student(hub, chromium, user: str) -> Student:
    student = Student(hub, chromium.new_context(), user)
    student.sign_in()
    student.open_server()
    return student


@pytest.fixture(scope="module")
def student_b(hub, chromium):
    student = _student(hub, chromium, B)
    done = student.run(
        "open('secret-essay.txt', 'w').write('only B may read this');"
        "import os; print(os.environ['JUPYTERHUB_API_TOKEN'][:4])"
    )
    assert len(done["out"].strip()) == 4, done
    return student


@pytest.fixture(scope="module")
def student_a(hub, chromium, student_b):
    return _student(hub, chromium, A)


def _out(student: Student, code: str, timeout: float = 60) -> str:
    result = student.run(code, timeout)
    assert not result.get("timeout") and not result.get("error"), result
    return result["out"]


def _container(hub, user: str) -> dict:
    inspected = hub.docker("inspect", f"callysto-{user}")
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)[0]


def test_each_student_runs_in_a_container_with_only_their_home(hub, student_a, student_b):
    for user in (A, B):
        container = _container(hub, user)
        assert container["Config"]["User"] == "1000:1000"
        mounts = [(m["Source"], m["Destination"], m["RW"]) for m in container["Mounts"]]
        assert mounts == [(str(hub.home(user)), "/home/student", True)]
        assert container["HostConfig"]["Memory"] == MEMORY_LIMIT
        assert container["HostConfig"]["PidsLimit"] == 200
        assert container["HostConfig"]["CapDrop"] == ["ALL"]
    assert (hub.home(B) / "secret-essay.txt").read_text() == "only B may read this"


def test_a_reads_and_writes_its_own_home(hub, student_a):
    out = _out(
        student_a, "open('mine.txt', 'w').write('A was here'); print(open('mine.txt').read())"
    )
    assert out.strip() == "A was here"
    written = hub.home(A) / "mine.txt"
    assert written.read_text() == "A was here"
    assert written.stat().st_uid == 1000


def test_a_cannot_list_read_or_write_b_home(hub, student_a, student_b):
    code = f"""
import os
tries = []
for path in [{str(hub.mountpoint)!r}, {str(hub.mountpoint / "home")!r}, {str(hub.home(B))!r}]:
    tries.append(os.path.exists(path))
found = []
for top, dirs, files in os.walk('/'):
    if top == '/':
        dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]
    found += [os.path.join(top, f) for f in files if f == 'secret-essay.txt']
try:
    open({str(hub.home(B) / "from-a.txt")!r}, 'w').write('x')
    wrote = True
except OSError:
    wrote = False
print(tries, found, wrote)
"""
    assert _out(student_a, code, timeout=120).strip() == "[False, False, False] [] False"
    assert not (hub.home(B) / "from-a.txt").exists()
    assert (hub.home(B) / "secret-essay.txt").exists()


def test_a_sees_no_other_server_process_environment_or_token(hub, student_a, student_b):
    b_token = next(
        line.split("=", 1)[1]
        for line in _container(hub, B)["Config"]["Env"]
        if line.startswith("JUPYTERHUB_API_TOKEN=")
    )
    code = """
import os
users, environs = set(), []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        users.add(open(f'/proc/{pid}/environ', 'rb').read().count(b'JUPYTERHUB_USER='))
        environs.append(open(f'/proc/{pid}/environ', 'rb').read())
    except OSError:
        pass
print(len(environs), b''.join(environs).decode(errors='replace'))
"""
    out = _out(student_a, code)
    count, _, environ = out.partition(" ")
    assert b_token not in environ
    assert f"JUPYTERHUB_USER={B}" not in environ
    # Only A's own processes: its init, server, kernel (and their helpers).
    assert 0 < int(count) < 15


def test_a_cannot_signal_b_server(hub, student_a, student_b):
    b_pid = _container(hub, B)["State"]["Pid"]
    code = f"""
import os, signal
try:
    os.kill({b_pid}, signal.SIGSTOP)
    print('signalled')
except ProcessLookupError:
    print('no such process')
except PermissionError:
    print('not permitted')
"""
    assert _out(student_a, code).strip() in ("no such process", "not permitted")
    assert _out(student_b, "print('B still answers')").strip() == "B still answers"


def test_a_cannot_reach_the_hub_secrets_the_pool_devices_or_docker(hub, student_a):
    paths = [
        hub.prefix / "secrets" / "proxy-token",
        hub.prefix / "state" / "jupyterhub.sqlite",
        hub.prefix / "run" / "docker.sock",
        hub.env_dir / "secrets" / "hub-api-token",
        *sorted(hub.data_dir.glob("*.img")),
        "/var/run/docker.sock",
    ]
    code = f"""
import os
paths = {[str(p) for p in paths]!r}
print([os.path.exists(p) for p in paths], sorted(os.listdir('/dev')))
"""
    out = _out(student_a, code)
    exists, _, devices = out.partition("] ")
    assert "True" not in exists
    assert not any(name.startswith(("sd", "vd", "loop", "zfs", "fuse")) for name in eval(devices))  # noqa: S307
    for vdev in hub.data_dir.glob("*.img"):
        assert vdev.stat().st_mode & 0o077 == 0, vdev


def test_a_kernel_over_the_memory_limit_is_killed_and_others_keep_running(
    hub, student_a, student_b
):
    hog = f"x = bytearray({2 * MEMORY_LIMIT}); x[::4096] = b'y' * len(x[::4096]); print('survived')"
    result = student_a.run(hog, timeout=120)
    assert "survived" not in result.get("out", ""), result
    assert result.get("restarting") or result.get("closed") or result.get("timeout"), result
    status, _ = hub.api("")
    assert status == 200
    assert _out(student_b, "print(6 * 7)").strip() == "42"
    # A's server itself lives on: a new kernel runs.
    student_a.kernel = None
    assert _out(student_a, "print('A is back')", timeout=120).strip() == "A is back"


def test_a_teacher_gets_the_group_limits(hub, chromium):
    teacher = _student(hub, chromium, TEACHER)
    assert _out(teacher, "print('teacher')").strip() == "teacher"
    config = _container(hub, TEACHER)["HostConfig"]
    assert config["Memory"] == 2 * MEMORY_LIMIT
    assert config["CpuQuota"] == 2 * config["CpuPeriod"]
    status, user = hub.api(f"users/{TEACHER}")
    assert status == 200 and user["groups"] == ["teachers"]


def test_hub_servers_lists_who_runs_what(hub, student_a, student_b):
    listed = hub.callysto("hub", "servers", "--env", hub.name, "--json")
    assert listed.returncode == 0, listed.stderr
    servers = {s["user"]: s for s in json.loads(listed.stdout)}
    assert {A, B} <= set(servers)
    assert all(servers[u]["ready"] and servers[u]["memory_bytes"] > 0 for u in (A, B))
    assert all(servers[u]["memory_bytes"] < MEMORY_LIMIT for u in (A, B))


def test_a_quota_holds_inside_the_sandbox(hub, student_a):
    changed = hub.callysto("quota", "set", "--env", hub.name, A, "20M", "--force")
    assert changed.returncode == 0, changed.stderr
    code = """
try:
    with open('big.bin', 'wb') as f:
        for _ in range(64):
            f.write(b'z' * 2**20)
            f.flush()
    print('wrote it all')
except OSError as exc:
    print('refused', exc.errno)
"""
    assert _out(student_a, code).startswith("refused")
    (hub.home(A) / "big.bin").unlink(missing_ok=True)


def test_a_banned_student_gets_the_507_page(hub, chromium, student_b):
    banned = hub.callysto("user", "ban", "--env", hub.name, B)
    assert banned.returncode == 0, banned.stderr
    status, _ = hub.api(f"users/{B}/server", method="POST")
    assert status == 507
    assert "running" not in hub.docker("ps", "--filter", f"name=callysto-{B}").stdout
    unbanned = hub.callysto("user", "unban", "--env", hub.name, B)
    assert unbanned.returncode == 0, unbanned.stderr


def test_image_build_keeps_an_unchanged_image(hub):
    before = hub.docker("images", "--quiet", "callysto-students").stdout.split()
    built = hub.callysto("image", "build", "--env", hub.name)
    assert built.returncode == 0, built.stderr
    assert "changed=0" in built.stderr
    assert hub.docker("images", "--quiet", "callysto-students").stdout.split() == before


@pytest.fixture(scope="module")
def lesson_repo(tmp_path_factory):
    """A teacher's lesson as a git repository served by `git daemon` on 127.0.0.1, as a school's
    git server would serve it (nbgitpuller clones shallow, which git's dumb HTTP cannot)."""
    import subprocess

    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    (work / "lesson-1.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    git = ["git", "-c", "user.name=Teacher", "-c", "user.email=teacher@school.example"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "Lesson 1"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "lesson")], check=True)
    daemon = subprocess.Popen(
        ["git", "daemon", "--listen=127.0.0.1", "--port=18135", "--reuseaddr", "--export-all",
         f"--base-path={root}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)
        yield "git://127.0.0.1:18135/lesson"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_teachers_nbgitpuller_link_pulls_the_lesson_into_the_home(hub, student_a, lesson_repo):
    link = (
        f"{hub.url}hub/user-redirect/git-pull?repo={lesson_repo}&branch=main"
        "&urlpath=lab/tree/lesson/lesson-1.ipynb"
    )
    student_a.page.goto(link)
    student_a.page.wait_for_url("**/lab/tree/lesson/**", timeout=120_000)
    pulled = hub.home(A) / "lesson" / "lesson-1.ipynb"
    assert json.loads(pulled.read_text())["nbformat"] == 4
    assert pulled.stat().st_uid == 1000


def test_stop_idle_and_the_culler_stop_servers_and_keep_files(hub, student_a):
    none = hub.callysto("hub", "stop-idle", "--env", hub.name, "--older-than", "1d")
    assert none.returncode == 0 and "no server was idle" in none.stdout
    stopped = hub.callysto("hub", "stop-idle", "--env", hub.name, "--older-than", "0s")
    assert stopped.returncode == 0, stopped.stderr
    assert A in stopped.stdout

    # The culler: a short idle timeout, applied by running 'make local' again.
    hub.configure(servers={**SETTINGS["servers"], "idle_timeout": "6s"})
    again = hub.make_local()
    assert again.returncode == 0, again.stderr[-3000:]
    status, _ = hub.api(f"users/{A}/server", method="POST")
    assert status in (201, 202)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, user = hub.api(f"users/{A}")
        if not user.get("servers"):
            break
        time.sleep(2)
    else:
        pytest.fail("the idle server was not culled within 120 s")
    assert "Culling server" in hub.hub_log()
    assert (hub.home(A) / "mine.txt").read_text() == "A was here"
