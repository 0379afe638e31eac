"""The object-store interface the ledger needs, and an in-memory implementation for tests."""

from __future__ import annotations

import threading
from typing import Protocol

# Requests one client has in flight at once (parallel reads or writes): below botocore's 10 pooled
# connections per S3 client, so none waits for or discards a connection.
MAX_CONCURRENT_REQUESTS = 8


class ObjectStore(Protocol):
    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""

    def get_tail(self, bucket: str, key: str, length: int) -> bytes | None:
        """The object's last `length` bytes (all of it if shorter), or None if it does not exist."""

    def put(self, bucket: str, key: str, body: bytes | bytearray) -> None: ...

    def size(self, bucket: str, key: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Create the object only if no object has the key (`If-None-Match: *`); False if one does."""

    def list_keys(self, bucket: str, prefix: str) -> dict[str, int]:
        """Every key under the prefix with its size in bytes."""

    def list_prefixes(self, bucket: str, prefix: str) -> list[str]:
        """The `/`-delimited sub-folders directly under prefix (which ends with `/`)."""


class InMemoryObjectStore:
    """A dict behind the ObjectStore interface, with the same conditional-create semantics."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def check_bucket(self, bucket: str) -> None:
        """Every bucket exists in memory."""

    def get(self, bucket: str, key: str) -> bytes | None:
        return self.objects.get((bucket, key))

    def get_tail(self, bucket: str, key: str, length: int) -> bytes | None:
        body = self.objects.get((bucket, key))
        return None if body is None else body[-length:]

    def size(self, bucket: str, key: str) -> int | None:
        body = self.objects.get((bucket, key))
        return None if body is None else len(body)

    def put(self, bucket: str, key: str, body: bytes | bytearray) -> None:
        with self._lock:
            self.objects[(bucket, key)] = bytes(body)

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        with self._lock:
            if (bucket, key) in self.objects:
                return False
            self.objects[(bucket, key)] = bytes(body)
            return True

    def list_keys(self, bucket: str, prefix: str) -> dict[str, int]:
        return {k: len(v) for (b, k), v in sorted(self.objects.items()) if b == bucket and k.startswith(prefix)}

    def list_prefixes(self, bucket: str, prefix: str) -> list[str]:
        found = {
            prefix + k[len(prefix) :].split("/", 1)[0] + "/"
            for (b, k) in self.objects
            if b == bucket and k.startswith(prefix) and "/" in k[len(prefix) :]
        }
        return sorted(found)
