"""The database URL of the Couchbase store, parsed into what the SDK needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from app.store.base import positive_seconds
from app.store.couchbase.sql import quote_identifier

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class CouchbaseConfig:
    """Where and how to reach the collection, parsed from the database URL."""

    connection_string: str
    username: str
    password: str = field(repr=False)
    bucket: str
    scope: str = "_default"
    collection: str = "_default"
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_url(cls, url: str) -> CouchbaseConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("couchbase", "couchbases"):
            raise ValueError(f"not a Couchbase URL (couchbase:// or couchbases://): {url!r}")
        credentials, _, hosts = parts.netloc.rpartition("@")
        username, has_password, password = credentials.partition(":")
        if not (username and has_password):
            raise ValueError("the Couchbase URL needs credentials: couchbase://USER:PASSWORD@HOST/")
        if not hosts:
            raise ValueError("the Couchbase URL names no host")
        bucket = unquote(parts.path.strip("/"))
        if not bucket or "/" in bucket:
            raise ValueError("the Couchbase URL path must be the bucket name alone: /BUCKET")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        scope = options.pop("scope", "") or "_default"
        collection = options.pop("collection", "") or "_default"
        timeout_s = positive_seconds(options.pop("timeout", str(DEFAULT_TIMEOUT_S)))
        connection_string = f"{parts.scheme}://{hosts}"
        if options:
            connection_string += f"?{urlencode(options)}"
        return cls(
            connection_string=connection_string,
            username=unquote(username),
            password=unquote(password),
            bucket=bucket,
            scope=scope,
            collection=collection,
            timeout_s=timeout_s,
        )

    @property
    def keyspace(self) -> str:
        """The collection's full SQL++ name."""
        return ".".join(quote_identifier(n) for n in (self.bucket, self.scope, self.collection))
