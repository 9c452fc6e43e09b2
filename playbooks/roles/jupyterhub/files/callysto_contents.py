"""A student's notebooks and files in object storage: s3contents' S3ContentsManager, set up from
the server's environment (the hub's object gateway, the environment's container, the student's
own prefix and key), with a save over the quota answered by a clear message.

Mounted read-only into the student's container by the hub (callysto_hub.ObjectHomeSpawner)."""

import os

from s3contents import S3ContentsManager
from tornado.web import HTTPError

# The gateway's answer to a save over the quota (callysto_objects.QUOTA_CODE).
QUOTA_CODE = "QuotaExceeded"
QUOTA_MARK = "Your home is full"


class CallystoContentsManager(S3ContentsManager):
    def __init__(self, *args, **kwargs):
        env = os.environ
        kwargs.setdefault("endpoint_url", env["CALLYSTO_OBJECTS_ENDPOINT"])
        kwargs.setdefault("bucket", env["CALLYSTO_OBJECTS_BUCKET"])
        kwargs.setdefault("prefix", env["CALLYSTO_OBJECTS_PREFIX"])
        kwargs.setdefault("region_name", env.get("CALLYSTO_OBJECTS_REGION", "RegionOne"))
        kwargs.setdefault("access_key_id", env["CALLYSTO_OBJECTS_ACCESS_KEY"])
        kwargs.setdefault("secret_access_key", env["CALLYSTO_OBJECTS_SECRET_KEY"])
        # Plain requests with a signed body: no aws-chunked uploads, which Swift's S3 API
        # (and the gateway) do not take.
        kwargs.setdefault(
            "s3fs_config_kwargs",
            {
                "s3": {"addressing_style": "path"},
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            },
        )
        super().__init__(*args, **kwargs)

    def save(self, model, path=""):
        try:
            return super().save(model, path)
        except HTTPError as exc:
            message = exc.log_message or ""
            if QUOTA_MARK in message:
                start = message.index(QUOTA_MARK)
                raise HTTPError(507, message[start:].split("\n")[0].rstrip(")'\"")) from None
            raise
