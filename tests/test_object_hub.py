"""Plan B on a real local hub (`make local` with storage: object): students' notebooks in the hub's
own Swift (Debian's servers with the S3 API, run by the swift_local role), saved and opened by
s3contents in each student's container through the hub's object gateway. Everything a student
does here goes through their own browser session (headless Chromium), as JupyterLab does it."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from tests.localhub import ARTIFACTS, LocalHub, Student, browser

pytestmark = pytest.mark.slow

A = "d4" * 20
B = "e5" * 20

# The contents API as JupyterLab calls it, from the student's page (their cookies, their XSRF).
CONTENTS_JS = """
async ([base, method, path, body]) => {
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
  const response = await fetch(base + "api/contents/" + path, {method,
    headers: {"X-XSRFToken": decodeURIComponent(xsrf), "Content-Type": "application/json"},
    body: body === null ? undefined : JSON.stringify(body)});
  const text = await response.text();
  return {status: response.status, body: text};
}
"""


def notebook(source: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
                   "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip


@pytest.fixture(scope="module")
def hub(zfs_daemon):
    hub = LocalHub("objects", 18710, {"storage": "object", "servers": {"idle_timeout": 0}})
    pids = []
    try:
        hub.up()
        run = [hub.data_dir / "swift" / "run", hub.prefix / "run"]
        pids = [int(f.read_text()) for d in run for f in d.glob("*.pid")]
        assert len(pids) >= 6, pids  # memcached, Swift's four servers, the gateway, ...
        yield hub
    finally:
        hub.destroy()
    # 'make local/destroy' stopped the hub's Swift and its gateway with the rest.
    for pid in pids:
        assert not _running(pid), pid


def _running(pid: int) -> bool:
    """Whether PID runs (a zombie waiting for its parent to reap it has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


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
def student_a(hub, chromium):
    return _student(hub, chromium, A)


@pytest.fixture(scope="module")
def student_b(hub, chromium):
    return _student(hub, chromium, B)


def contents(
    student: Student, method: str, path: str, body: dict | None = None
) -> tuple[int, dict]:
    answer = student.page.evaluate(CONTENTS_JS, [student.server_url, method, path, body])
    try:
        return answer["status"], json.loads(answer["body"]) if answer["body"] else {}
    except ValueError:
        return answer["status"], {"message": answer["body"]}


def store(hub):
    """The hub's Swift, with the environment's own credentials, as the operator reaches it."""
    import boto3
    from botocore.config import Config

    from callysto_infra import objectstore

    lines = dict(
        line.split(": ", 1)
        for line in (hub.env_dir / "secrets" / "object-credentials").read_text().splitlines()
    )
    return objectstore.with_content_md5(boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{hub.port + 6}",
        aws_access_key_id=lines["access_key"], aws_secret_access_key=lines["secret_key"],
        region_name="RegionOne",
        config=Config(s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required"),
    ))  # fmt: skip


def keys(hub) -> list[str]:
    client = store(hub)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=f"callysto-{hub.name}")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_the_hub_keeps_no_student_files_and_runs_its_own_swift(hub, student_a):
    container = json.loads(hub.docker("inspect", f"callysto-{A}").stdout)[0]
    mounts = [(m["Source"], m["Destination"], m["RW"]) for m in container["Mounts"]]
    assert mounts == [
        (
            str(hub.prefix / "etc" / "callysto_contents.py"),
            "/opt/callysto/callysto_contents.py",
            False,
        )
    ]
    assert not hub.home(A).exists()
    credentials = hub.env_dir / "secrets" / "object-credentials"
    assert credentials.stat().st_mode & 0o777 == 0o600
    secret = dict(line.split(": ", 1) for line in credentials.read_text().splitlines())
    env = "\n".join(container["Config"]["Env"])
    assert secret["secret_key"] not in env and secret["secret_key"] not in hub.make_output
    assert f"CALLYSTO_OBJECTS_PREFIX={A}" in env


def test_a_notebook_saved_in_the_browser_lands_under_the_student_prefix(hub, student_a):
    status, _ = contents(student_a, "PUT", "lesson.ipynb",
                         {"type": "notebook", "content": notebook("print('hello')")})  # fmt: skip
    assert status in (200, 201)
    status, _ = contents(student_a, "PUT", "drafts", {"type": "directory"})
    assert status in (200, 201)
    status, _ = contents(student_a, "PUT", "drafts/data.csv",
                         {"type": "file", "format": "text", "content": "x,y\n1,2\n"})  # fmt: skip
    assert status in (200, 201)
    found = [k for k in keys(hub) if not k.startswith(".callysto/")]
    assert f"{A}/lesson.ipynb" in found and f"{A}/drafts/data.csv" in found
    assert all(k.startswith(f"{A}/") for k in found), found
    saved = store(hub).get_object(Bucket=f"callysto-{hub.name}", Key=f"{A}/lesson.ipynb")
    assert json.loads(saved["Body"].read())["cells"][0]["source"] == "print('hello')"
    # JupyterLab opens it again from Swift.
    student_a.page.goto(f"{student_a.server_url}lab/tree/lesson.ipynb")
    student_a.page.get_by_text("print('hello')").first.wait_for(timeout=120_000)


def test_rename_and_delete_behave_as_on_zfs(hub, student_a):
    status, _ = contents(student_a, "PATCH", "lesson.ipynb", {"path": "lesson-1.ipynb"})
    assert status == 200
    status, _ = contents(student_a, "PATCH", "drafts", {"path": "project"})
    assert status == 200
    status, listing = contents(student_a, "GET", "")
    assert {item["name"] for item in listing["content"]} >= {"lesson-1.ipynb", "project"}
    assert f"{A}/project/data.csv" in keys(hub) and f"{A}/drafts/data.csv" not in keys(hub)
    assert f"{A}/lesson.ipynb" not in keys(hub)
    status, _ = contents(student_a, "DELETE", "project/data.csv")
    assert status == 204
    status, _ = contents(student_a, "GET", "project/data.csv")
    assert status == 404
    assert f"{A}/project/data.csv" not in keys(hub)


def test_jupyterlab_saves_what_the_student_types(hub, student_a):
    typed = {**notebook(""), "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}}  # fmt: skip
    status, _ = contents(student_a, "PUT", "typed.ipynb", {"type": "notebook", "content": typed})
    assert status in (200, 201)
    page = student_a.page
    # ?reset: a fresh workspace, without the tabs of files renamed since.
    page.goto(f"{student_a.server_url}lab/tree/typed.ipynb?reset")
    editor = page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first
    editor.wait_for(timeout=120_000)
    # JupyterLab may still ask something (a kernel to pick): take its default answer.
    page.wait_for_timeout(2000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "object-hub-opened.png"))
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()
    page.screenshot(path=str(ARTIFACTS / "object-hub-typed.png"))
    editor.click()
    editor.type("print(6 * 7)")
    page.keyboard.press("Control+s")
    client, key = store(hub), f"{A}/typed.ipynb"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get_object(Bucket=f"callysto-{hub.name}", Key=key)["Body"].read()
        if "print(6 * 7)" in "".join(json.loads(body)["cells"][0]["source"]):
            break
        time.sleep(1)
    else:
        pytest.fail("the typed cell never reached Swift")


def test_checkpoints_and_a_large_upload_in_chunks(hub, student_a):
    status, checkpoint = contents(student_a, "POST", "lesson-1.ipynb/checkpoints")
    assert status == 201, checkpoint
    status, _ = contents(student_a, "PUT", "lesson-1.ipynb",
                         {"type": "notebook", "content": notebook("print('changed')")})  # fmt: skip
    assert status == 200
    status, _ = contents(student_a, "POST", f"lesson-1.ipynb/checkpoints/{checkpoint['id']}")
    assert status == 204
    status, back = contents(student_a, "GET", "lesson-1.ipynb")
    assert back["content"]["cells"][0]["source"] == "print('hello')"
    # JupyterLab uploads a large file in chunks of base64.
    parts = [os.urandom(512 * 1024) for _ in range(3)]
    for number, part in zip((1, 2, -1), parts, strict=True):
        status, answer = contents(student_a, "PUT", "upload.bin", {
            "type": "file", "format": "base64", "chunk": number,
            "content": base64.b64encode(part).decode(),
        })  # fmt: skip
        assert status in (200, 201), answer
    saved = store(hub).get_object(Bucket=f"callysto-{hub.name}", Key=f"{A}/upload.bin")
    assert saved["Body"].read() == b"".join(parts)
    status, _ = contents(student_a, "DELETE", "upload.bin")
    assert status == 204 and f"{A}/upload.bin" not in keys(hub)


def test_another_student_cannot_reach_a_files_with_their_server_key(hub, student_a, student_b):
    contents(student_a, "PUT", "diary.txt", {"type": "file", "format": "text",
                                             "content": "only A may read this"})  # fmt: skip
    code = f"""
import os, botocore.session
from botocore.config import Config
s3 = botocore.session.get_session().create_client('s3', endpoint_url=os.environ['CALLYSTO_OBJECTS_ENDPOINT'],
    aws_access_key_id=os.environ['CALLYSTO_OBJECTS_ACCESS_KEY'],
    aws_secret_access_key=os.environ['CALLYSTO_OBJECTS_SECRET_KEY'], region_name='RegionOne',
    config=Config(s3={{'addressing_style': 'path'}}, request_checksum_calculation='when_required'))
bucket = os.environ['CALLYSTO_OBJECTS_BUCKET']
tries = {{
  'get': lambda: s3.get_object(Bucket=bucket, Key='{A}/diary.txt')['Body'].read(),
  'list': lambda: s3.list_objects_v2(Bucket=bucket, Prefix='{A}/'),
  'list-all': lambda: s3.list_objects_v2(Bucket=bucket),
  'put': lambda: s3.put_object(Bucket=bucket, Key='{A}/from-b.txt', Body=b'x'),
  'copy': lambda: s3.copy_object(Bucket=bucket, Key=os.environ['CALLYSTO_OBJECTS_PREFIX'] + '/c',
                                 CopySource={{'Bucket': bucket, 'Key': '{A}/diary.txt'}}),
  'delete': lambda: s3.delete_object(Bucket=bucket, Key='{A}/diary.txt'),
  'quota': lambda: s3.put_object(Bucket=bucket, Key='.callysto/homes/' +
                                 os.environ['CALLYSTO_OBJECTS_PREFIX'] + '.json', Body=b'{{}}'),
  'other-bucket': lambda: s3.list_objects_v2(Bucket='callysto-other', Prefix='{A}/'),
  'own': lambda: s3.put_object(Bucket=bucket, Key=os.environ['CALLYSTO_OBJECTS_PREFIX'] + '/mine', Body=b'1'),
}}
for name, attempt in tries.items():
    try:
        attempt()
        print(name, 'allowed')
    except Exception as exc:
        print(name, 'refused', type(exc).__name__)
"""
    result = student_b.run(code, timeout=120)
    lines = dict(line.split(" ", 1) for line in result["out"].strip().splitlines() if " " in line)
    assert lines.pop("own", None) == "allowed", result
    assert all(value.startswith("refused") for value in lines.values()), result
    assert len(lines) == 8, result
    assert f"{A}/diary.txt" in keys(hub) and f"{A}/from-b.txt" not in keys(hub)
    body = store(hub).get_object(Bucket=f"callysto-{hub.name}", Key=f"{A}/diary.txt")["Body"]
    assert body.read() == b"only A may read this"


def test_a_save_over_the_quota_is_refused_with_a_clear_message(hub, student_a):
    changed = hub.callysto("quota", "set", "--env", hub.name, A, "1M")
    assert changed.returncode == 0, changed.stderr
    status, answer = contents(student_a, "PUT", "big.txt",
                              {"type": "file", "format": "text", "content": "z" * (2 << 20)})  # fmt: skip
    assert status == 507, answer
    assert answer["message"].startswith("Your home is full"), answer
    assert f"{A}/big.txt" not in keys(hub)
    # A small save still fits.
    status, _ = contents(student_a, "PUT", "small.txt",
                         {"type": "file", "format": "text", "content": "fits"})  # fmt: skip
    assert status in (200, 201)
    listed = hub.callysto("quota", "get", "--env", hub.name, A, "--json")
    assert listed.returncode == 0, listed.stderr
    home = json.loads(listed.stdout)
    assert home["refquota"] == 1 << 20 and 0 < home["used"] < 1 << 20


def test_a_banned_student_cannot_start_and_gets_the_507_page(hub, student_b):
    banned = hub.callysto("user", "ban", "--env", hub.name, B)
    assert banned.returncode == 0, banned.stderr
    status, _ = hub.api(f"users/{B}/server", method="POST")
    assert status == 507
    unbanned = hub.callysto("user", "unban", "--env", hub.name, B)
    assert unbanned.returncode == 0, unbanned.stderr


def test_make_local_again_changes_nothing_and_keeps_the_notebooks(
    hub, student_a, monkeypatch, tmp_path
):
    before = keys(hub)
    results = tmp_path / "second-run.json"
    monkeypatch.setenv("CALLYSTO_ANSIBLE_RESULTS", str(results))
    again = hub.make_local()
    assert again.returncode == 0, again.stderr[-3000:]
    document = json.loads(results.read_text())
    (stats,) = document["stats"].values()
    assert (stats["changed"], stats["failures"]) == (0, 0), document.get("changed")
    assert keys(hub) == before
