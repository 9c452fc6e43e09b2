"""Students' notebooks in object storage (Plan B): the hub's gateway to the environment's Swift
container, through Swift's S3 API.

The gateway is the only holder of the environment's Swift credentials. Each student's server gets
a key of its own, derived from the hub's gateway secret and the student's hash, and the gateway
accepts a request signed with it only for objects under '<hash>/' of the one container, refuses
writes that would take the home over its quota or while the student is banned, and forwards what
it accepts to Swift signed with the real credentials. A student's kernel can read its server's
key, and with it reach nothing but its own files.

A home's quota and ban live in '.callysto/homes/<hash>.json', outside every student's prefix.
Standard library only: it runs with the hub's Python, and is imported by callysto_hub.py."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import http.client
import json
import logging
import re
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER_HASH = re.compile(r"[0-9a-f]{40}")
HOMES_PREFIX = ".callysto/homes/"
ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
# A request signed longer ago than this (or that far ahead) is refused, as S3 does.
CLOCK_SKEW = 15 * 60
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# Headers a client's request may pass on to Swift; everything else is dropped.
FORWARDED = {
    "content-type", "content-length", "content-md5", "range", "if-match", "if-none-match",
    "if-modified-since", "if-unmodified-since", "x-amz-copy-source", "x-amz-copy-source-range",
    "x-amz-metadata-directive", "cache-control", "content-disposition", "content-encoding",
}  # fmt: skip
RETURNED = {
    "content-type", "content-length", "content-range", "etag", "last-modified", "accept-ranges",
    "x-amz-request-id", "x-amz-id-2", "x-amz-version-id",
}  # fmt: skip

# The query parameters a request on an object may carry, by method.
OBJECT_PARAMS = {
    "GET": {"partNumber", "uploadId", "max-parts", "part-number-marker"},
    "HEAD": {"partNumber"},
    "PUT": {"partNumber", "uploadId"},
    "POST": {"uploads", "uploadId"},
    "DELETE": {"uploadId"},
}

log = logging.getLogger("callysto-objects")


def _response_params(params: dict) -> bool:
    """GET's response-content-type and the like (they only change the answer's headers)."""
    rest = set(params) - OBJECT_PARAMS["GET"]
    return bool(rest) and all(name.startswith("response-") for name in rest)


def read_secret(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def read_credentials(path: str) -> tuple[str, str]:
    """(access key, secret key) from the environment's object-credentials file: two lines
    'access_key: ...' and 'secret_key: ...'."""
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.partition(":")
            if sep:
                values[key.strip()] = value.strip()
    return values["access_key"], values["secret_key"]


def student_secret(gateway_key: str, user_hash: str) -> str:
    """The S3 secret of USER_HASH's server: only the hub and the gateway can compute it."""
    return hmac.new(
        gateway_key.encode(), b"callysto-student:" + user_hash.encode(), hashlib.sha256
    ).hexdigest()


# --- Signature Version 4 ------------------------------------------------------------------------


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(raw: str) -> str:
    pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
    return "&".join(f"{k}={v}" for k, v in sorted((_quote(k), _quote(v)) for k, v in pairs))


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, method: str, path: str, query: str, headers: dict[str, str],
              signed: list[str], payload_hash: str, amz_date: str, scope: str) -> str:  # fmt: skip
    """SigV4 over a request whose header names are lower-case in HEADERS."""
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query(query),
            "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed),
            ";".join(signed),
            payload_hash,
        ]
    )
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    date, region, service, _ = scope.split("/")
    key = _signing_key(secret, date, region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign(access_key: str, secret: str, region: str, method: str, host: str, path: str,
         query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:  # fmt: skip
    """HEADERS with host, date, payload hash and Authorization for the real credentials."""
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = {k.lower(): v for k, v in headers.items()}
    out["host"] = host
    out["x-amz-date"] = now
    out["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    signed = sorted(out)
    scope = f"{now[:8]}/{region}/s3/aws4_request"
    sig = signature(secret, method, path, query, out, signed, out["x-amz-content-sha256"], now,
                    scope)  # fmt: skip
    out["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
        f"Signature={sig}"
    )
    return out


# --- the environment's container, with the real credentials -------------------------------------


@dataclass(frozen=True)
class Store:
    """The environment's container at Swift's S3 endpoint, reached with the real credentials."""

    endpoint: str  # http(s)://host:port
    bucket: str
    access_key: str
    secret_key: str
    region: str = "RegionOne"

    def request(self, method: str, key: str | None = None, query: str = "",
                headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        parts = urllib.parse.urlsplit(self.endpoint)
        path = "/" + _quote(self.bucket) + ("/" + urllib.parse.quote(key, safe="/~") if key else "")
        return self.raw(method, path, query, headers or {}, body, parts)

    def raw(self, method, path, query, headers, body, parts=None):
        parts = parts or urllib.parse.urlsplit(self.endpoint)
        signed = sign(self.access_key, self.secret_key, self.region, method, parts.netloc, path,
                      query, headers, body)  # fmt: skip
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = factory(parts.hostname, parts.port, timeout=120)
        try:
            connection.request(method, path + (f"?{query}" if query else ""), body=body or None,
                               headers=signed)  # fmt: skip
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def listing(self, prefix: str):
        """Every object under PREFIX: (key, size) pairs, page after page."""
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            status, _, data = self.request(
                "GET", query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
            )
            if status != 200:
                raise OSError(f"listing {prefix} failed: HTTP {status}")
            root = ET.fromstring(data)  # noqa: S314 - expat >= 2.4 refuses entity bombs; bodies are bounded
            for item in root.iter(f"{S3_NS}Contents"):
                yield item.findtext(f"{S3_NS}Key"), int(item.findtext(f"{S3_NS}Size") or 0)
            if root.findtext(f"{S3_NS}IsTruncated") != "true":
                return
            token = root.findtext(f"{S3_NS}NextContinuationToken")

    def usage(self, user_hash: str) -> int:
        return sum(size for _, size in self.listing(f"{user_hash}/"))

    def home(self, user_hash: str) -> dict | None:
        """The home's record (quota in bytes or None, banned since or None), or None."""
        status, _, data = self.request("GET", f"{HOMES_PREFIX}{user_hash}.json")
        if status == 404:
            return None
        if status != 200:
            raise OSError(f"reading the home of {user_hash} failed: HTTP {status}")
        return json.loads(data)

    def ensure_home(self, user_hash: str, quota: int | None) -> dict:
        """The home's record, made at first login with the default QUOTA."""
        record = self.home(user_hash)
        if record is None:
            record = {"quota": quota, "banned": None,
                      "created": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}  # fmt: skip
            body = json.dumps(record).encode()
            status, _, _ = self.request("PUT", f"{HOMES_PREFIX}{user_hash}.json",
                                        headers={"content-type": "application/json"}, body=body)  # fmt: skip
            if status != 200:
                raise OSError(f"creating the home of {user_hash} failed: HTTP {status}")
        return record


def human(size: int | None) -> str:
    if size is None:
        return "no limit"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


# --- the gateway ---------------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


QUOTA_CODE = "QuotaExceeded"


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, store: Store, gateway_key: str):
        super().__init__(address, Handler)
        self.store = store
        self.gateway_key = gateway_key
        # Parts of multipart uploads in flight: upload id -> (user, bytes so far).
        self.uploads: dict[str, list] = {}
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        # Paths hold only hashes and file names; who signs in is never known here.
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._serve()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    # --- the request ---------------------------------------------------------------------------
    def _serve(self):
        self._length, self._body_read = 0, False
        try:
            user, path, query, body = self._authenticate()
            status, headers, data = self._authorize_and_forward(user, path, query, body)
        except Refused as refused:
            status, headers, data = (
                refused.status,
                {"content-type": "application/xml"},
                (
                    "<?xml version='1.0' encoding='UTF-8'?><Error>"
                    f"<Code>{refused.code}</Code><Message>{_xml(refused.message)}</Message></Error>"
                ).encode(),
            )
            if self.command == "HEAD":
                data = b""
        except Exception:  # a bug or an unreachable Swift: a 500, never a crash
            log.exception("request failed")
            status, headers, data = (
                500,
                {"content-type": "application/xml"},
                (
                    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
                    b"<Message>the hub's object gateway failed</Message></Error>"
                ),
            )
        self.send_response(status)
        if self._length and not self._body_read:
            # A refused upload's body is still on the wire: this connection cannot carry on.
            self.close_connection = True
            self.send_header("Connection", "close")
        for name, value in headers.items():
            if name in RETURNED and name != "content-length":
                self.send_header(name, value)
        length = headers.get("content-length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _authenticate(self) -> tuple[str, str, str, bytes]:
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth = headers.get("authorization", "")
        match = re.fullmatch(
            ALGORITHM + r" Credential=([0-9a-f]{40})/(\d{8}/[A-Za-z0-9-]+/s3/aws4_request),"
            r" ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})",
            auth,
        )
        if not match:
            raise Refused(403, "AccessDenied", "requests must be signed with a student's key")
        user, scope, signed, given = match.groups()
        amz_date = headers.get("x-amz-date", "")
        try:
            when = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise Refused(403, "AccessDenied", "x-amz-date is missing or malformed") from None
        if abs(time.time() - when) > CLOCK_SKEW or scope[:8] != amz_date[:8]:
            raise Refused(403, "RequestTimeTooSkewed", "the request's time is too far from now")
        names = signed.split(";")
        if "host" not in names:
            raise Refused(403, "AccessDenied", "the host header must be signed")
        payload = headers.get("x-amz-content-sha256", "")
        if headers.get("transfer-encoding") or payload.startswith("STREAMING-"):
            raise Refused(501, "NotImplemented", "streaming (aws-chunked) uploads are not accepted")
        length = int(headers.get("content-length") or 0)
        # The quota is checked before a body is read (see _write_allowed); this only bounds it.
        if length > 5 << 30:
            raise Refused(400, "EntityTooLarge", "an object is at most 5 GiB")
        expected = signature(
            student_secret(self.server.gateway_key, user), self.command, path, query, headers,
            names, payload, amz_date, scope,
        )  # fmt: skip
        if not hmac.compare_digest(expected, given):
            raise Refused(403, "SignatureDoesNotMatch", "the request's signature does not match")
        self._user, self._length = user, length
        self._headers = headers
        return user, path, query, b""

    def _body(self) -> bytes:
        body = self.rfile.read(self._length) if self._length else b""
        self._body_read = True
        payload = self._headers.get("x-amz-content-sha256", "")
        if payload != UNSIGNED and not hmac.compare_digest(
            payload, hashlib.sha256(body).hexdigest()
        ):
            raise Refused(400, "XAmzContentSHA256Mismatch", "the body does not match its hash")
        return body

    # --- what a student may do -----------------------------------------------------------------
    def _own_key(self, user: str, key: str) -> str:
        parts = key.split("/")
        if (
            parts[0] != user
            or len(parts) < 2
            or any(p in (".", "..") for p in parts)
            or any(ord(c) < 0x20 for c in key)
        ):
            raise Refused(403, "AccessDenied", "only your own files can be reached")
        return key

    def _authorize_and_forward(self, user: str, path: str, query: str, _: bytes):
        store = self.server.store
        bucket, _, raw_key = path.lstrip("/").partition("/")
        if urllib.parse.unquote(bucket) != store.bucket:
            raise Refused(403, "AccessDenied", "only your own files can be reached")
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        method = self.command
        if not raw_key:
            return self._bucket_request(user, method, query, params)
        key = self._own_key(user, urllib.parse.unquote(raw_key))
        # Only the requests s3contents makes: no ACLs (Swift is reachable from students' kernels,
        # so an object made public would be public), tagging, versions or restores.
        allowed = OBJECT_PARAMS.get(method, set())
        if not set(params) <= allowed and not (method == "GET" and _response_params(params)):
            raise Refused(403, "AccessDenied", "this request is not allowed here")
        headers = {k: v for k, v in self._headers.items() if k in FORWARDED}
        if method in ("GET", "HEAD"):
            return store.raw(method, path, query, headers, b"")
        if method == "POST" and not ({"uploads"} == set(params) or "uploadId" in params):
            raise Refused(403, "AccessDenied", "this request is not allowed here")
        record = store.home(user) or {}
        if record.get("banned"):
            raise Refused(403, "AccessDenied",
                          "your home is read-only at the moment: nothing can be saved or deleted")  # fmt: skip
        if method == "DELETE":
            return store.raw(method, path, query, headers, b"")
        source = headers.get("x-amz-copy-source")
        size = self._length
        if source:
            src_bucket, _, src_key = (
                urllib.parse.unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
            )
            if src_bucket != store.bucket:
                raise Refused(403, "AccessDenied", "only your own files can be copied")
            self._own_key(user, src_key)
            status, src_headers, _ = store.request("HEAD", src_key)
            size = int(src_headers.get("content-length", 0)) if status == 200 else 0
        if method == "PUT" and "uploadId" not in params:
            self._within_quota(user, record, key, size, copy=bool(source))
        elif method == "PUT":  # a part of a multipart upload
            self._part_within_quota(user, record, params["uploadId"], size)
        body = self._body()
        if method == "POST" and "uploadId" in params:  # completing: the parts become the object
            with self.server.lock:
                self.server.uploads.pop(params["uploadId"], None)
        status, out_headers, data = store.raw(method, path, query, headers, body)
        if method == "POST" and "uploads" in params and status == 200:
            upload = ET.fromstring(data).findtext(f"{S3_NS}UploadId")  # noqa: S314 - expat >= 2.4 refuses entity bombs; bodies are bounded
            with self.server.lock:
                self.server.uploads[upload] = [user, self._existing(user, key)]
        return status, out_headers, data

    def _bucket_request(self, user: str, method: str, query: str, params: dict):
        store = self.server.store
        if method == "HEAD" and not params:
            return store.raw("HEAD", "/" + _quote(store.bucket), "", {}, b"")
        if method == "GET" and set(params) == {"location"}:
            return store.raw("GET", "/" + _quote(store.bucket), query, {}, b"")
        if method == "GET" and self._own_prefix(user, params.get("prefix", "")):
            allowed = {"list-type", "prefix", "delimiter", "max-keys", "continuation-token",
                       "start-after", "marker", "encoding-type", "fetch-owner"}  # fmt: skip
            if set(params) <= allowed:
                return store.raw("GET", "/" + _quote(store.bucket), query, {}, b"")
        if method == "POST" and set(params) == {"delete"}:
            record = store.home(user) or {}
            if record.get("banned"):
                raise Refused(403, "AccessDenied", "your home is read-only at the moment")
            if self._length > 1 << 20:
                raise Refused(400, "MalformedXML", "a delete request lists at most 1000 keys")
            body = self._body()
            for key in ET.fromstring(body).iter(f"{S3_NS}Key"):  # noqa: S314 - expat >= 2.4 refuses entity bombs; bodies are bounded
                self._own_key(user, key.text or "")
            # Swift's S3 API wants Content-MD5 here, which newer clients no longer send.
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            return store.raw("POST", "/" + _quote(store.bucket), query,
                             {"content-md5": md5, "content-type": "application/xml"}, body)  # fmt: skip
        raise Refused(403, "AccessDenied", "only listing your own files is allowed here")

    def _own_prefix(self, user: str, prefix: str) -> bool:
        parts = prefix.split("/")
        return (
            parts[0] == user
            and len(parts) > 1
            and not any(p in (".", "..") for p in parts)
            and not any(ord(c) < 0x20 for c in prefix)
        )

    def _existing(self, user: str, key: str) -> int:
        status, headers, _ = self.server.store.request("HEAD", key)
        return int(headers.get("content-length", 0)) if status == 200 else 0

    def _within_quota(self, user: str, record: dict, key: str, size: int, copy: bool) -> None:
        quota = record.get("quota")
        if quota is None:
            return
        used = self.server.store.usage(user)
        if copy:
            # JupyterLab renames by copy-then-delete: a copy is let through while the home is
            # within its quota, so a rename works in a nearly full home.
            if used <= quota:
                return
        elif used - self._existing(user, key) + size <= quota:
            return
        raise Refused(403, QUOTA_CODE, over_quota(used, size, quota))

    def _part_within_quota(self, user: str, record: dict, upload: str, size: int) -> None:
        quota = record.get("quota")
        with self.server.lock:
            entry = self.server.uploads.setdefault(upload, [user, 0])
            if entry[0] != user:
                raise Refused(403, "AccessDenied", "not your upload")
            if quota is not None:
                used = self.server.store.usage(user)
                if used + entry[1] + size > quota:
                    raise Refused(403, QUOTA_CODE, over_quota(used + entry[1], size, quota))
            entry[1] += size


def over_quota(used: int, size: int, quota: int) -> str:
    return (
        f"Your home is full: this save needs {human(size)}, and {human(used)} of your "
        f"{human(quota)} are used. Delete some files (or ask for more space) and save again."
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ensure_container(store: Store) -> bool:
    """Make the environment's container when it is missing; True when it was made."""
    status, _, _ = store.request("HEAD")
    if status == 200:
        return False
    status, _, data = store.request("PUT")
    if status != 200:
        raise OSError(f"creating container {store.bucket} failed: HTTP {status} {data[:200]!r}")
    return True


def main(argv: list[str]) -> int:
    """serve PORT ENDPOINT BUCKET REGION CREDENTIALS_FILE GATEWAY_KEY_FILE, or
    ensure-container ENDPOINT BUCKET REGION CREDENTIALS_FILE (prints 'created' or 'exists')."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    command, *rest = argv
    if command == "ensure-container":
        endpoint, bucket, region, credentials = rest
        store = Store(endpoint.rstrip("/"), bucket, *read_credentials(credentials), region)
        print("created" if ensure_container(store) else "exists")
        return 0
    port, endpoint, bucket, region, credentials, key_file = rest
    store = Store(endpoint.rstrip("/"), bucket, *read_credentials(credentials), region)
    server = Gateway(("127.0.0.1", int(port)), store, read_secret(key_file))
    log.info("object gateway for container %s on 127.0.0.1:%s", bucket, port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
