"""Plan B against a real Swift (Debian's servers with the S3 API, on 127.0.0.1, on files): the hub's
object gateway keeps each student's key to their own prefix and their quota; the operator's
commands (quota, ban, delete-home, restore-home, backup homes, storage migrate) work on an
environment whose storage is object; migration from ZFS to Swift and back keeps every byte."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import swift as swift_server
from tests.conftest import PROJECT

GATEWAY = PROJECT / "playbooks" / "roles" / "jupyterhub" / "files" / "callysto_objects.py"
SWIFT_PORT = 18750
GATEWAY_PORT = 18760
A = "a7" * 20
B = "b8" * 20
GATEWAY_KEY = "9f" * 32


def _objects_module():
    spec = importlib.util.spec_from_file_location("callysto_objects", GATEWAY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["callysto_objects"] = module
    spec.loader.exec_module(module)
    return module


objects = _objects_module()


@pytest.fixture(scope="module")
def swift(tmp_path_factory):
    server = swift_server.start(tmp_path_factory.mktemp("swift"), SWIFT_PORT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def container(swift, request):
    """A fresh container for the test, emptied and removed afterwards."""
    name = f"callysto-t{abs(hash(request.node.name)) % 10**8}"
    client = swift.s3()
    client.create_bucket(Bucket=name)
    yield name
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    for key in [o["Key"] for page in pages for o in page.get("Contents", [])]:
        client.delete_object(Bucket=name, Key=key)
    client.delete_bucket(Bucket=name)


def _store(swift, bucket):
    return objects.Store(swift.endpoint, bucket, swift.access_key, swift.secret_key)


@pytest.fixture
def gateway(swift, container, tmp_path):
    """The hub's object gateway (the role's own file, run as the hub runs it) in front of the
    test's container."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "object-credentials").write_text(swift.credentials_text())
    (secrets / "object-gateway-key").write_text(GATEWAY_KEY + "\n")
    for file in secrets.iterdir():
        file.chmod(0o600)
    log = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(GATEWAY), "serve", str(GATEWAY_PORT), swift.endpoint, container,
         "RegionOne", str(secrets / "object-credentials"), str(secrets / "object-gateway-key")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", GATEWAY_PORT)) == 0:
                    break
            time.sleep(0.1)
        store = _store(swift, container)
        store.ensure_home(A, 1 << 20)
        store.ensure_home(B, None)
        yield store
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        log.close()
    assert swift.credentials_text().split()[-1] not in (tmp_path / "gateway.log").read_text()


def student_client(user: str, secret: str | None = None):
    """What a student's server holds: the gateway's address and a key of the student's own."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{GATEWAY_PORT}",
        aws_access_key_id=user,
        aws_secret_access_key=secret or objects.student_secret(GATEWAY_KEY, user),
        region_name="RegionOne",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


def _code(call) -> str:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "ok"


def keys(store, prefix="") -> list[str]:
    return sorted(key for key, _ in store.listing(prefix))


# --- the gateway -----------------------------------------------------------------------------------


def test_gateway_keeps_each_student_key_to_their_own_prefix(gateway):
    a, b = student_client(A), student_client(B)
    bucket = gateway.bucket
    assert _code(lambda: a.put_object(Bucket=bucket, Key=f"{A}/essay.txt", Body=b"A's")) == "ok"
    assert a.get_object(Bucket=bucket, Key=f"{A}/essay.txt")["Body"].read() == b"A's"
    refused = {
        "get": lambda: b.get_object(Bucket=bucket, Key=f"{A}/essay.txt"),
        "head": lambda: b.head_object(Bucket=bucket, Key=f"{A}/essay.txt"),
        "list": lambda: b.list_objects_v2(Bucket=bucket, Prefix=f"{A}/"),
        "list all": lambda: b.list_objects_v2(Bucket=bucket),
        "list around": lambda: b.list_objects_v2(Bucket=bucket, Prefix=f"{B}/../{A}/"),
        "put": lambda: b.put_object(Bucket=bucket, Key=f"{A}/x", Body=b"x"),
        "dotdot": lambda: b.put_object(Bucket=bucket, Key=f"{B}/../{A}/x", Body=b"x"),
        "delete": lambda: b.delete_object(Bucket=bucket, Key=f"{A}/essay.txt"),
        "bulk delete": lambda: b.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": f"{B}/mine"}, {"Key": f"{A}/essay.txt"}]}
        ),
        "copy out": lambda: b.copy_object(
            Bucket=bucket, Key=f"{B}/stolen", CopySource={"Bucket": bucket, "Key": f"{A}/essay.txt"}
        ),
        "own quota": lambda: b.put_object(
            Bucket=bucket, Key=f".callysto/homes/{B}.json", Body=b"{}"
        ),
        "bucket acl": lambda: b.get_bucket_acl(Bucket=bucket),
        "public own": lambda: b.put_object_acl(Bucket=bucket, Key=f"{B}/mine", ACL="public-read"),
        "new bucket": lambda: b.create_bucket(Bucket="callysto-mine"),
    }
    answers = {name: _code(call) for name, call in refused.items()}
    # A refused HEAD has no body, so no error code: only its status.
    assert answers.pop("head") == "403"
    assert set(answers.values()) == {"AccessDenied"}, json.dumps(answers)
    forged = student_client(A, secret=objects.student_secret("0" * 64, A))
    assert _code(lambda: forged.get_object(Bucket=bucket, Key=f"{A}/essay.txt")) == (
        "SignatureDoesNotMatch"
    )
    assert keys(gateway, f"{A}/") == [f"{A}/essay.txt"]
    assert keys(gateway, f"{B}/") == []
    assert gateway.home(B) == {**gateway.home(B), "quota": None}


def test_gateway_refuses_a_save_over_the_quota_and_while_banned(gateway):
    a = student_client(A)
    bucket = gateway.bucket
    assert _code(lambda: a.put_object(Bucket=bucket, Key=f"{A}/half", Body=b"h" * 600_000)) == "ok"
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        a.put_object(Bucket=bucket, Key=f"{A}/more", Body=b"m" * 600_000)
    assert refused.value.response["Error"]["Code"] == "QuotaExceeded"
    assert refused.value.response["Error"]["Message"].startswith("Your home is full")
    # Saving the same file again replaces it: only the difference counts.
    assert _code(lambda: a.put_object(Bucket=bucket, Key=f"{A}/half", Body=b"H" * 700_000)) == "ok"
    # Multipart uploads count too (5 MiB parts; the quota is 1 MiB).
    upload = a.create_multipart_upload(Bucket=bucket, Key=f"{A}/big.bin")["UploadId"]
    part = lambda: a.upload_part(  # noqa: E731
        Bucket=bucket, Key=f"{A}/big.bin", UploadId=upload, PartNumber=1, Body=b"p" * (5 << 20)
    )
    assert _code(part) == "QuotaExceeded"
    a.abort_multipart_upload(Bucket=bucket, Key=f"{A}/big.bin", UploadId=upload)
    assert keys(gateway, f"{A}/") == [f"{A}/half"]
    record = gateway.home(A)
    body = json.dumps({**record, "banned": "20261203T000000Z"}).encode()
    gateway.request("PUT", f".callysto/homes/{A}.json", body=body)
    assert _code(lambda: a.put_object(Bucket=bucket, Key=f"{A}/new", Body=b"x")) == "AccessDenied"
    assert _code(lambda: a.delete_object(Bucket=bucket, Key=f"{A}/half")) == "AccessDenied"
    assert a.get_object(Bucket=bucket, Key=f"{A}/half")["Body"].read() == b"H" * 700_000


def test_gateway_takes_a_multipart_upload_within_the_quota(gateway):
    b = student_client(B)  # no quota
    bucket = gateway.bucket
    upload = b.create_multipart_upload(Bucket=bucket, Key=f"{B}/video.bin")["UploadId"]
    parts = []
    for number, fill in ((1, b"1"), (2, b"2")):
        etag = b.upload_part(Bucket=bucket, Key=f"{B}/video.bin", UploadId=upload,
                             PartNumber=number, Body=fill * (5 << 20))["ETag"]  # fmt: skip
        parts.append({"ETag": etag, "PartNumber": number})
    b.complete_multipart_upload(Bucket=bucket, Key=f"{B}/video.bin", UploadId=upload,
                                MultipartUpload={"Parts": parts})  # fmt: skip
    body = b.get_object(Bucket=bucket, Key=f"{B}/video.bin")["Body"].read()
    assert body == b"1" * (5 << 20) + b"2" * (5 << 20)


# --- the operator's commands on an object environment ----------------------------------------------


@pytest.fixture
def object_env(callysto, envs_dir, swift, container, zfs_pool):
    """A local environment with storage: object, its container in the test's Swift, and the
    test's pool as its hub's pool (for migration)."""
    made = callysto("env", "new", "local", "plan-b")
    assert made.returncode == 0, made.stderr
    env_file = envs_dir / "plan-b" / "env.yaml"
    config = yaml.safe_load(env_file.read_text())
    config["hub"]["pool"] = zfs_pool.name
    config["storage"] = "object"
    config["object"] = {"endpoint": swift.endpoint, "container": container}
    env_file.write_text(yaml.safe_dump(config))
    credentials = envs_dir / "plan-b" / "secrets" / "object-credentials"
    credentials.write_text(swift.credentials_text())
    credentials.chmod(0o600)
    store = _store(swift, container)
    store.ensure_home(A, 1 << 30)
    store.ensure_home(B, 1 << 30)
    for user, size in ((A, 3000), (B, 1000)):
        store.request("PUT", f"{user}/notebook.ipynb", body=b"n" * size)
    return envs_dir / "plan-b", store


def test_quota_get_set_and_list_on_object_storage(callysto, object_env):
    _, store = object_env
    got = callysto("quota", "get", "--env", "plan-b", A, "--json")
    assert got.returncode == 0, got.stderr
    home = json.loads(got.stdout)
    assert (home["user"], home["used"], home["refquota"]) == (A, 3000, 1 << 30)
    changed = callysto("quota", "set", "--env", "plan-b", A, "2G")
    assert changed.returncode == 0, changed.stderr
    assert store.home(A)["quota"] == 2 << 30
    below = callysto("quota", "set", "--env", "plan-b", A, "1K")
    assert below.returncode == 2 and "below what" in below.stderr
    assert store.home(A)["quota"] == 2 << 30
    listed = callysto("quota", "list", "--env", "plan-b", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(h["user"], h["used"]) for h in json.loads(listed.stdout)] == [(A, 3000), (B, 1000)]


def test_ban_and_unban_on_object_storage(callysto, object_env):
    _, store = object_env
    banned = callysto("user", "ban", "--env", "plan-b", B)
    assert banned.returncode == 0, banned.stderr
    assert store.home(B)["banned"]
    listed = json.loads(callysto("quota", "list", "--env", "plan-b", "--json").stdout)
    assert {h["user"]: h["banned"] is not None for h in listed} == {A: False, B: True}
    unbanned = callysto("user", "unban", "--env", "plan-b", B)
    assert unbanned.returncode == 0, unbanned.stderr
    assert store.home(B)["banned"] is None


def test_delete_home_keeps_the_files_and_restore_home_brings_them_back(callysto, object_env):
    _, store = object_env
    store.request("PUT", f"{A}/sub/data.csv", body=b"1,2,3\n")
    wrong = callysto("user", "delete-home", "--env", "plan-b", A, "--yes", B)
    assert wrong.returncode == 2 and keys(store, f"{A}/") != []
    deleted = callysto("user", "delete-home", "--env", "plan-b", A, "--yes", A)
    assert deleted.returncode == 0, deleted.stderr
    assert keys(store, f"{A}/") == [] and store.home(A) is None
    assert keys(store, f"{B}/") == [f"{B}/notebook.ipynb"]
    command = next(line for line in deleted.stdout.splitlines() if "restore-home" in line)
    stamp = command.split("--from ")[1].split()[0]
    store.request("PUT", f"{A}/new-since.txt", body=b"new")
    restored = callysto("user", "restore-home", "--env", "plan-b", "--from", stamp, A)
    assert restored.returncode == 0, restored.stderr
    assert keys(store, f"{A}/") == [f"{A}/notebook.ipynb", f"{A}/sub/data.csv"]
    assert store.request("GET", f"{A}/sub/data.csv")[2] == b"1,2,3\n"
    assert store.home(A)["quota"] == 1 << 30
    unknown = callysto("user", "restore-home", "--env", "plan-b", "--from", "20200101T000000Z", A)
    assert unknown.returncode == 2 and "no deleted home" in unknown.stderr


def test_backup_homes_copies_the_container_incrementally(callysto, object_env, tmp_path):
    _, store = object_env
    target = tmp_path / "homes-backup"
    target.mkdir(mode=0o700)
    first = callysto("backup", "homes", "--env", "plan-b", "--to", str(target))
    assert first.returncode == 0, first.stderr
    copy = target / store.bucket / A / "notebook.ipynb"
    assert copy.read_bytes() == b"n" * 3000
    assert copy.stat().st_mode & 0o777 == 0o600
    assert (target / store.bucket / A).stat().st_mode & 0o777 == 0o700
    second = callysto("backup", "homes", "--env", "plan-b", "--to", str(target))
    assert second.returncode == 0, second.stderr
    assert "copied 0 objects" in second.stderr
    store.request("PUT", f"{B}/notebook.ipynb", body=b"changed")
    third = callysto("backup", "homes", "--env", "plan-b", "--to", str(target))
    assert "copied 1 objects" in third.stderr, third.stderr
    assert (target / store.bucket / B / "notebook.ipynb").read_bytes() == b"changed"
    missing = callysto("backup", "homes", "--env", "plan-b", "--to", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and not (tmp_path / "nowhere").exists()


# --- migration --------------------------------------------------------------------------------------


def _zfs_home(pool, user: str) -> Path:
    subprocess.run(["zfs", "create", "-o", "refquota=64M", f"{pool.name}/home/{user}"], check=True)
    mountpoint = subprocess.run(
        ["zfs", "get", "-H", "-o", "value", "mountpoint", f"{pool.name}/home/{user}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return Path(mountpoint)


def _tree(home: Path) -> dict[str, str]:
    """Every file (sha256) and directory ('dir') under HOME."""
    found = {}
    for top, dirs, files in os.walk(home):
        for name in dirs:
            found[str((Path(top) / name).relative_to(home))] = "dir"
        for name in files:
            path = Path(top) / name
            found[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_migrate_zfs_to_object_and_back_keeps_every_file_byte_identical(
    callysto, object_env, zfs_pool
):
    _, store = object_env
    user = "c9" * 20
    home = _zfs_home(zfs_pool, user)
    (home / "lessons" / "week 1").mkdir(parents=True)
    (home / "empty-folder").mkdir()
    (home / "lessons" / "week 1" / "intro.ipynb").write_text(
        json.dumps({"cells": [], "nbformat": 4})
    )
    (home / "lessons" / "données-élève.csv").write_text("é,ü\n1,2\n", encoding="utf-8")
    (home / "random.bin").write_bytes(os.urandom(3 << 20))
    (home / "empty.txt").write_bytes(b"")
    before = _tree(home)

    moved = callysto("storage", "migrate", "--env", "plan-b", "--to", "object", user)
    assert moved.returncode == 0, moved.stderr
    assert "4 copied" in moved.stdout, moved.stdout
    assert store.request("GET", f"{user}/random.bin")[2] == (home / "random.bin").read_bytes()
    assert f"{user}/empty-folder/.s3keep" in keys(store, f"{user}/")
    assert store.home(user)["quota"] == 64 << 20

    # Interrupted and run again: only what is missing is sent.
    store.request("DELETE", f"{user}/lessons/données-élève.csv")
    again = callysto("storage", "migrate", "--env", "plan-b", "--to", "object", user)
    assert again.returncode == 0, again.stderr
    assert "1 copied, 3 already there" in again.stdout, again.stdout

    # Back to ZFS, into a home made afresh.
    from callysto_infra import hubs, zfs

    zfs.destroy(
        hubs.Hub(name="localhost", address=None), f"{zfs_pool.name}/home/{user}", force=True
    )
    back = callysto("storage", "migrate", "--env", "plan-b", "--to", "zfs", user)
    assert back.returncode == 0, back.stderr
    restored = Path(
        subprocess.run(
            ["zfs", "get", "-H", "-o", "value", "mountpoint", f"{zfs_pool.name}/home/{user}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    assert _tree(restored) == before
    assert (restored / "random.bin").stat().st_uid == 1000
    twice = callysto("storage", "migrate", "--env", "plan-b", "--to", "zfs", user)
    assert twice.returncode == 0 and "0 copied, 4 already there" in twice.stdout, twice.stdout


def test_migrate_refuses_bad_input_and_changes_nothing(callysto, object_env, one_line_error):
    _, store = object_env
    before = keys(store)
    for args in (
        ["--to", "tape", A],
        ["--to", "object", "not-a-hash"],
        ["--to", "object", A + "\n"],
    ):
        result = callysto("storage", "migrate", "--env", "plan-b", *args)
        one_line_error(result, code=2)
    assert keys(store) == before


def test_env_yaml_object_settings_are_checked(callysto, envs_dir, one_line_error):
    made = callysto("env", "new", "local", "checked")
    assert made.returncode == 0, made.stderr
    env_file = envs_dir / "checked" / "env.yaml"
    config = yaml.safe_load(env_file.read_text())
    for bad in (
        {"storage": "swift"},
        {"storage": "object", "object": {"endpoint": "ftp://swift.example.org"}},
        {"storage": "object", "object": {"container": "Callysto_Homes"}},
        {"storage": "object", "object": {"container": "callysto-homes\n"}},
        {"storage": "object", "object": {"region": "Region One"}},
    ):
        env_file.write_text(yaml.safe_dump({**config, **bad}))
        one_line_error(callysto("env", "show", "--env", "checked"), code=2)
    env_file.write_text(yaml.safe_dump({**config, "storage": "object"}))
    shown = callysto("env", "show", "--env", "checked")
    assert shown.returncode == 0, shown.stderr


def test_credentials_others_can_read_are_refused(callysto, object_env, one_line_error):
    env_dir, _ = object_env
    credentials = env_dir / "secrets" / "object-credentials"
    credentials.chmod(0o644)
    one_line_error(callysto("quota", "list", "--env", "plan-b"), "readable by others", "chmod 600",
                   code=2)  # fmt: skip
    credentials.chmod(0o600)
    credentials.write_text("access_key: x\n")
    one_line_error(callysto("quota", "list", "--env", "plan-b"), "secret_key", code=2)


def test_a_student_who_never_signed_in_has_no_home_to_act_on(callysto, object_env, one_line_error):
    _, store = object_env
    before = keys(store)
    never = "0d" * 20
    for args in (["quota", "get"], ["quota", "set"], ["user", "ban"]):
        extra = ["1G"] if args == ["quota", "set"] else []
        one_line_error(
            callysto(*args, "--env", "plan-b", never, *extra), "not have signed in", code=1
        )
    assert keys(store) == before


def test_gateway_refuses_a_request_signed_long_ago(gateway):
    """A signed request seen again later (a replay) is refused once it is 15 minutes old."""
    import http.client

    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 20 * 60))
    scope = f"{amz_date[:8]}/RegionOne/s3/aws4_request"
    path = f"/{gateway.bucket}/{A}/old.txt"
    headers = {"host": f"127.0.0.1:{GATEWAY_PORT}", "x-amz-date": amz_date,
               "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}  # fmt: skip
    names = sorted(headers)
    secret = objects.student_secret(GATEWAY_KEY, A)
    sig = objects.signature(secret, "GET", path, "", headers, names, "UNSIGNED-PAYLOAD",
                            amz_date, scope)  # fmt: skip
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={A}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    connection = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=10)
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    assert answer.status == 403
    assert b"RequestTimeTooSkewed" in answer.read()
    connection.close()
