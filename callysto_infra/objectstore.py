"""Plan B's students' homes: '<hash>/' prefixes of an environment's Swift container, reached
through Swift's S3 API with the environment's credentials (secrets/object-credentials). Quotas,
bans, deleted homes, backups and migration between ZFS and Swift. boto3 is imported here only."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callysto_infra import secretfiles, validate
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.homes import Home, timestamp
from callysto_infra.sizes import human_size

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

CREDENTIALS_FILE = "object-credentials"
META = ".callysto/"
HOMES = f"{META}homes/"
DELETED = f"{META}deleted/"
# s3contents marks a directory with this empty object.
KEEP_FILE = ".s3keep"
# A local environment without object.endpoint runs its own Swift (the swift_local role) here,
# relative to local.port.
LOCAL_SWIFT_OFFSET = 6
CHUNK = 8 << 20


def with_content_md5(client):
    """CLIENT, adding the Content-MD5 that Swift's S3 API requires of a multi-object delete and
    that botocore no longer sends."""

    def add_md5(request, **_: Any) -> None:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()

    client.meta.events.register("before-sign.s3.DeleteObjects", add_md5)
    return client


# --- the environment's container ---------------------------------------------------------------


def require_object(env: Environment) -> None:
    """An environment with object storage: 'storage: object', or an 'object' section kept for
    migrating back to ZFS."""
    if env.config.storage != "object" and env.config.object is None:
        raise UsageError(
            f"environment '{env.name}' has no object storage: set 'storage: object' (and its "
            "'object' section) in env.yaml"
        )


def container(env: Environment) -> str:
    settings = env.config.object
    return (settings.container if settings else None) or f"callysto-{env.name}"


def region(env: Environment) -> str:
    return env.config.object.region if env.config.object else "RegionOne"


def endpoint(env: Environment) -> str:
    settings = env.config.object
    if settings is not None and settings.endpoint:
        return settings.endpoint
    return f"http://127.0.0.1:{env.local.port + LOCAL_SWIFT_OFFSET}"


def credentials_file(env: Environment) -> Path:
    return env.secrets_dir / CREDENTIALS_FILE


def read_credentials(path: Path) -> tuple[str, str]:
    """(access key, secret key) from a 0600 file of two lines, 'access_key: ...' and
    'secret_key: ...' (for Swift's tempauth the access key is 'account:user')."""
    values: dict[str, str] = {}
    for line in secretfiles.read_text(path, "object storage credentials file").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    if not values.get("access_key") or not values.get("secret_key"):
        raise UsageError(
            f"{path} must hold two lines, 'access_key: ...' and 'secret_key: ...' "
            "(the EC2 credentials of the environment's Swift account)"
        )
    return values["access_key"], values["secret_key"]


@dataclass
class Store:
    """The environment's container and an S3 client for it."""

    bucket: str
    client: Any
    name: str  # what 'hub' says in a home: swift:<container>

    # --- objects -----------------------------------------------------------------------------
    def objects(self, prefix: str) -> Iterator[dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            yield from page.get("Contents", [])

    def head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise OperationError(f"object storage: {exc}") from None

    def read_json(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise OperationError(f"object storage: {exc}") from None
        return json.loads(body)

    def write_json(self, key: str, document: dict) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=json.dumps(document).encode(),
            ContentType="application/json",
        )  # fmt: skip

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise OperationError(f"could not delete {first['Key']}: {first.get('Message')}")

    def copy(self, source: str, target: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
        )

    # --- homes -------------------------------------------------------------------------------
    def record(self, user_hash: str) -> dict | None:
        return self.read_json(f"{HOMES}{user_hash}.json")

    def home(self, user_hash: str, record: dict | None = None, used: int | None = None) -> Home:
        record = record if record is not None else self.record(user_hash) or {}
        if used is None:
            used = sum(o["Size"] for o in self.objects(f"{user_hash}/"))
        quota = record.get("quota")
        banned = record.get("banned")
        return Home(
            hub=self.name,
            name=f"{self.bucket}/{user_hash}",
            used=used,
            referenced=used,
            refquota=quota,
            available=max(0, quota - used) if quota is not None else 0,
            readonly=bool(banned),
            banned=banned,
        )


def store(env: Environment) -> Store:
    """The environment's container (it must exist: the hub playbook makes it)."""
    require_object(env)
    import boto3
    from botocore.config import Config

    access, secret = read_credentials(credentials_file(env))
    client = boto3.client(
        "s3",
        endpoint_url=endpoint(env),
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=region(env),
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3},
            connect_timeout=10,
            read_timeout=120,
        ),
    )
    bucket = container(env)
    found = Store(bucket=bucket, client=with_content_md5(client), name=f"swift:{bucket}")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise OperationError(
            f"container '{bucket}' at {endpoint(env)} cannot be reached "
            f"({exc.response.get('Error', {}).get('Code')}): run the hub playbook, which makes it"
        ) from None
    except BotoCoreError as exc:
        raise OperationError(f"object storage at {endpoint(env)} does not answer: {exc}") from None
    return found


# --- reading homes --------------------------------------------------------------------------------


def get_home(env: Environment, user_hash: str) -> tuple[Store, Home]:
    found = store(env)
    user_hash = validate.user_hash(user_hash)
    record = found.record(user_hash)
    if record is None:
        raise OperationError(
            f"no home {found.bucket}/{user_hash} in object storage; the student may not have "
            "signed in yet"
        )
    return found, found.home(user_hash, record)


def list_homes(env: Environment) -> list[Home]:
    """Every home of the container, largest first: one listing of the container for the sizes,
    and the homes' records read side by side."""
    found = store(env)
    sizes: dict[str, int] = {}
    for item in found.objects(""):
        top, sep, _ = item["Key"].partition("/")
        if sep and validate.is_user_hash(top):
            sizes[top] = sizes.get(top, 0) + item["Size"]
    users = [
        name.removeprefix(HOMES).removesuffix(".json")
        for name in (o["Key"] for o in found.objects(HOMES))
    ]
    users = [u for u in users if validate.is_user_hash(u)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        records = list(pool.map(found.record, users))
    homes = [found.home(u, r or {}, sizes.get(u, 0)) for u, r in zip(users, records, strict=True)]
    return sorted(homes, key=lambda h: (-h.used, h.name))


# --- quotas and bans -------------------------------------------------------------------------------


def set_quota(found: Store, home: Home, size: str, *, force: bool = False) -> tuple[Home, str]:
    size = validate.zfs_size(size)
    wanted = validate.zfs_size_bytes(size)
    if wanted is not None and wanted < home.used:
        if not force:
            raise UsageError(
                f"quota {size} is below what {home.user_hash} already uses "
                f"({human_size(home.used)}): nothing was changed; give a larger size, or "
                "--force to set the quota to the space already used"
            )
        wanted, size = home.used, str(home.used)
    record = found.record(home.user_hash) or {}
    found.write_json(f"{HOMES}{home.user_hash}.json", {**record, "quota": wanted})
    return found.home(home.user_hash), size


def ban(found: Store, home: Home) -> Home:
    record = found.record(home.user_hash) or {}
    found.write_json(f"{HOMES}{home.user_hash}.json", {**record, "banned": timestamp()})
    return found.home(home.user_hash)


def unban(found: Store, home: Home) -> Home:
    record = found.record(home.user_hash) or {}
    found.write_json(f"{HOMES}{home.user_hash}.json", {**record, "banned": None})
    return found.home(home.user_hash)


# --- deleting and restoring homes ------------------------------------------------------------------


@dataclass(frozen=True)
class Deleted:
    hub: str
    dataset: str
    snapshot: str  # what restore-home --from takes


def _move(found: Store, source_prefix: str, target_prefix: str) -> int:
    """Copy every object under SOURCE_PREFIX to TARGET_PREFIX (server side), check each copy's
    size, then delete the originals. Returns how many moved."""
    keys = [(o["Key"], o["Size"]) for o in found.objects(source_prefix)]
    for key, size in keys:
        target = target_prefix + key[len(source_prefix) :]
        found.copy(key, target)
        copied = found.head(target)
        if copied is None or copied["ContentLength"] != size:
            raise OperationError(f"copying {key} to {target} did not check out: nothing deleted")
    found.delete([key for key, _ in keys])
    return len(keys)


def delete_home(found: Store, home: Home) -> Deleted:
    """Move the home's objects and record under .callysto/deleted/<hash>/<time>/: the next sign-in
    starts with an empty home, and restore-home brings these back."""
    stamp = timestamp()
    kept = f"{DELETED}{home.user_hash}/{stamp}"
    if any(True for _ in found.objects(f"{kept}/")):
        kept = f"{kept}-{os.urandom(3).hex()}"
    record = found.record(home.user_hash) or {}
    found.write_json(f"{kept}.json", record)
    _move(found, f"{home.user_hash}/", f"{kept}/files/")
    found.delete([f"{HOMES}{home.user_hash}.json"])
    return Deleted(
        hub=found.name, dataset=f"{found.bucket}/{kept}", snapshot=kept.rsplit("/", 1)[1]
    )


def restore_home(env: Environment, user_hash: str, spec: str) -> tuple[str, str | None]:
    """Make the home hold exactly the files kept under SPEC (a name delete-home printed). What it
    held before is kept as a deleted home of its own first. Returns (source, previous)."""
    found = store(env)
    user_hash = validate.user_hash(user_hash)
    name = spec.rsplit("/", 1)[-1]
    if not _stamp_ok(name):
        raise UsageError(f"invalid deleted home '{spec}': give a name such as 20260101T000000Z")
    kept = f"{DELETED}{user_hash}/{name}"
    record = found.read_json(f"{kept}.json")
    if record is None:
        known = sorted(
            {o["Key"][len(f"{DELETED}{user_hash}/") :].split("/")[0].removesuffix(".json")
             for o in found.objects(f"{DELETED}{user_hash}/")}
        )  # fmt: skip
        hint = f"kept for this user: {', '.join(known)}" if known else "this user has none"
        raise UsageError(f"no deleted home '{name}' of {user_hash} ({hint})")
    previous = None
    current = found.record(user_hash)
    if current is not None and current.get("banned"):
        raise UsageError(f"{user_hash} is banned: run 'callysto user unban' first")
    if current is not None or any(True for _ in found.objects(f"{user_hash}/")):
        previous = delete_home(found, found.home(user_hash, current or {})).snapshot
    files = f"{kept}/files/"
    for item in found.objects(files):
        found.copy(item["Key"], user_hash + "/" + item["Key"][len(files) :])
    found.write_json(f"{HOMES}{user_hash}.json", {**record, "banned": None})
    return name, previous


def _stamp_ok(name: str) -> bool:
    import re

    return re.fullmatch(r"[0-9]{8}T[0-9]{6}Z(?:-[0-9a-f]{6})?", name) is not None


# --- backups ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRun:
    directory: Path
    copied: int
    unchanged: int
    bytes_copied: int


def backup_homes(env: Environment, directory: Path) -> BackupRun:
    """Copy the container's homes, records and deleted homes into DIRECTORY/<container>/,
    incrementally: an object whose ETag the folder's manifest already holds is not fetched again.
    Files 0600 in 0700 folders (they hold every student's files); nothing is ever removed."""
    if not directory.is_dir():
        raise UsageError(f"backup folder {directory} does not exist: make it first (mkdir -m 700)")
    found = store(env)
    root = directory / found.bucket
    root.mkdir(mode=0o700, exist_ok=True)
    manifest_file = root / ".callysto-manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    copied = unchanged = total = 0
    try:
        for item in found.objects(""):
            key, etag = item["Key"], item["ETag"].strip('"')
            target = _safe_path(root, key)
            if manifest.get(key) == etag and target.is_file():
                unchanged += 1
                continue
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                digest = _download(found, key, handle)
            if "-" not in etag and digest != etag:
                partial.unlink()
                raise OperationError(f"{key} changed while it was copied: run the backup again")
            partial.replace(target)
            manifest[key] = etag
            copied += 1
            total += item["Size"]
    finally:
        fd = os.open(
            manifest_file.with_suffix(".partial"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        with os.fdopen(fd, "w") as handle:
            json.dump(manifest, handle)
        manifest_file.with_suffix(".partial").replace(manifest_file)
    return BackupRun(root, copied, unchanged, total)


def _download(found: Store, key: str, handle) -> str:
    """Write KEY's bytes to HANDLE; their MD5 (a single-part object's ETag)."""
    body = found.client.get_object(Bucket=found.bucket, Key=key)["Body"]
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter(lambda: body.read(CHUNK), b""):
        digest.update(chunk)
        handle.write(chunk)
    return digest.hexdigest()


def _safe_path(root: Path, relative: str) -> Path:
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") for p in parts) or "\x00" in relative:
        raise OperationError(f"object '{relative}' does not name a file: not copied")
    return root.joinpath(*parts)


# --- migration between ZFS and object storage --------------------------------------------------------


@dataclass
class Migrated:
    user: str
    copied: int = 0
    unchanged: int = 0
    verified: int = 0
    skipped: list[str] | None = None  # what could not be moved (links, devices, ...)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(home: Path) -> tuple[list[Path], list[Path], list[str]]:
    """Directories, regular files and anything else (relative names) under HOME."""
    dirs, files, other = [Path(".")], [], []
    for top, subdirs, names in os.walk(home):
        base = Path(top)
        for name in list(subdirs):
            path = base / name
            if path.is_symlink():
                subdirs.remove(name)
                other.append(str(path.relative_to(home)))
            else:
                dirs.append(path.relative_to(home))
        for name in names:
            path = base / name
            if path.is_file() and not path.is_symlink():
                files.append(path.relative_to(home))
            else:
                other.append(str(path.relative_to(home)))
    return dirs, files, other


def _key(user: str, relative: Path) -> str:
    return user if str(relative) == "." else f"{user}/{relative.as_posix()}"


def to_object(found: Store, user: str, home: Path, zfs_home: Home) -> Migrated:
    """Copy HOME (a mounted ZFS home) into USER's prefix: each file whose object already has the
    same MD5 is left (so a second run resumes), every other one is sent with its Content-MD5
    (Swift checks it), and every object is then checked against its file."""
    dirs, files, other = _walk(home)
    result = Migrated(user=user, skipped=other)
    sums: dict[str, str] = {}
    for relative in files:
        key = _key(user, relative)
        md5 = _md5_file(home / relative)
        sums[key] = md5
        existing = found.head(key)
        if existing is not None and existing["ETag"].strip('"') == md5:
            result.unchanged += 1
            continue
        with (home / relative).open("rb") as body:
            found.client.put_object(
                Bucket=found.bucket, Key=key, Body=body,
                ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
            )  # fmt: skip
        result.copied += 1
    for relative in dirs:
        key = f"{_key(user, relative)}/{KEEP_FILE}"
        if key not in sums and found.head(key) is None:
            found.client.put_object(Bucket=found.bucket, Key=key, Body=b"")
        sums.setdefault(key, hashlib.md5(b"", usedforsecurity=False).hexdigest())
    listed = {o["Key"]: o["ETag"].strip('"') for o in found.objects(f"{user}/")}
    for key, md5 in sums.items():
        if listed.get(key) != md5:
            raise OperationError(f"{key} does not match its file after the copy: run migrate again")
        result.verified += 1
    record = found.record(user) or {"created": timestamp()}
    found.write_json(
        f"{HOMES}{user}.json",
        {**record, "quota": zfs_home.refquota, "banned": zfs_home.banned, "migrated": timestamp()},
    )
    return result


def to_zfs(found: Store, user: str, home: Path, uid: int) -> Migrated:
    """Copy USER's objects into HOME (a mounted ZFS home): a file already there with the same
    MD5 is left; others are written beside and renamed into place once their MD5 matches the
    object's; then every file is checked against its object."""
    prefix = f"{user}/"
    objects = list(found.objects(prefix))
    result = Migrated(user=user, skipped=[])
    expected: dict[Path, str] = {}
    os.chown(home, uid, uid)
    for item in objects:
        relative = item["Key"][len(prefix) :]
        etag = item["ETag"].strip('"')
        parts = relative.split("/")
        if parts[-1] == KEEP_FILE:
            directory = _safe_path(home, "/".join(parts[:-1])) if len(parts) > 1 else home
            _make_dirs(home, directory, uid)
            continue
        target = _safe_path(home, relative)
        _make_dirs(home, target.parent, uid)
        if target.is_file() and not target.is_symlink() and _md5_file(target) == etag:
            result.unchanged += 1
            expected[target] = etag
            continue
        partial = target.with_name(f".{target.name}.callysto-partial")
        with partial.open("wb") as handle:
            digest = _download(found, item["Key"], handle)
        if "-" not in etag and digest != etag:
            partial.unlink()
            raise OperationError(f"{item['Key']} changed while it was copied: run migrate again")
        os.chown(partial, uid, uid)
        partial.replace(target)
        expected[target] = digest
        result.copied += 1
    for target, md5 in expected.items():
        if _md5_file(target) != md5:
            raise OperationError(f"{target} does not match its object after the copy")
        result.verified += 1
    return result


def _make_dirs(home: Path, directory: Path, uid: int) -> None:
    missing = []
    current = directory
    while current != home and not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o755)
        os.chown(path, uid, uid)


def migrate(env: Environment, to: str, users: list[str], host: str | None, say) -> list[Migrated]:
    """Move USERS (every home of the source when empty) between the hub's ZFS homes and the
    environment's container, TO 'object' or 'zfs'. The source is left as it was; run again after
    an interruption and only what is missing or different is copied."""
    from callysto_infra import homes, zfs

    found = store(env)
    pool = env.config.hub.pool
    hub = (
        homes.target_hubs(env, host)[0] if host or len(homes.target_hubs(env, None)) == 1 else None
    )
    if hub is None:
        raise UsageError("this environment has several hubs: name the one with --host")
    if not hub.is_local:
        raise OperationError(
            f"migrate reads and writes the ZFS homes directly: run it on hub '{hub.name}' itself"
        )
    if not users:
        if to == "object":
            users = [h.user_hash for h in homes.list_homes(hub, pool)]
        else:
            users = [
                k.removeprefix(HOMES).removesuffix(".json")
                for k in (o["Key"] for o in found.objects(HOMES))
            ]
            users = [u for u in users if validate.is_user_hash(u)]
    done = []
    for user in users:
        if to == "object":
            zfs_home = homes.get_home(hub, pool, user)
            if zfs_home is None:
                raise OperationError(f"no ZFS home {homes.home_of(pool, user)} on hub '{hub.name}'")
            mounted, ok = zfs.mount_state(hub, zfs_home.name)
            if mounted is None or not ok:
                raise OperationError(f"{zfs_home.name} is not mounted: mount it and run again")
            result = to_object(found, user, Path(mounted), zfs_home)
        else:
            record = found.record(user)
            if record is None:
                raise OperationError(f"no home {found.bucket}/{user} in object storage")
            used = sum(o["Size"] for o in found.objects(f"{user}/"))
            name = homes.home_of(pool, user)
            current = homes.get_home(hub, pool, user)
            if current is None:
                quota = record.get("quota")
                refquota = str(max(quota, used + (4 << 20))) if quota else env.config.hub.refquota
                zfs.create(hub, name, {"refquota": refquota})
            elif current.readonly or current.banned:
                raise UsageError(f"{name} is read-only (banned): run 'callysto user unban' first")
            mounted, ok = zfs.mount_state(hub, name)
            if mounted is None or not ok:
                raise OperationError(f"{name} is not mounted: mount it and run again")
            result = to_zfs(found, user, Path(mounted), uid=1000)
            if record.get("banned"):
                homes.ban(hub, homes.get_home(hub, pool, user))
        say(
            f"{user}: {result.copied} copied, {result.unchanged} already there, "
            f"{result.verified} verified"
            + (f", {len(result.skipped)} not files (left)" if result.skipped else "")
        )
        done.append(result)
    return done
