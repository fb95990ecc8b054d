"""A claim check for large payloads: the payload goes to a store, the workflow history keeps a small reference.

Temporal refuses any payload over its blob size limit (2 MB by default) and keeps every payload in the workflow
history, which is replayed on every worker that picks the run up. A 3 MB tool result therefore cannot cross the
activity boundary at all, and a run of many 500 KB results makes a history that is slow to load and replay. The
claim check is a `PayloadCodec`, Temporal's extension point for compression and encryption: payloads over a
threshold are written to a [`ClaimCheckStore`][durable_temporal.ClaimCheckStore] under the digest of their bytes, and
replaced by a reference (`encoding: durable/claim-check`) of about a hundred bytes; decoding fetches them back.

Codecs run outside the workflow sandbox (when a worker sends or receives a task), so the store may do I/O. Keys
are content digests: an activity that is retried, or a payload sent twice, is stored once.

The codec wraps the user's own codec (encryption, compression) and runs after it: what reaches the store is
what that codec produced (encrypted bytes, for an encryption codec), and the reference in the history names it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext
from typing_extensions import Self

__all__ = ('DEFAULT_CLAIM_CHECK_THRESHOLD', 'ClaimCheckCodec', 'ClaimCheckStore', 'FileClaimCheckStore')

DEFAULT_CLAIM_CHECK_THRESHOLD = 128 * 1024
"""Payloads of more bytes than this (after the user's codec) go to the store; smaller ones stay in the history."""

REFERENCE_ENCODING = b'durable/claim-check'
"""The `encoding` metadata of a reference payload; its data is the store key (ASCII)."""

_SIZE_KEY = 'durable-claim-check-size'


@runtime_checkable
class ClaimCheckStore(Protocol):
    """Where [`PydanticAIPlugin(claim_check=...)`][durable_temporal.PydanticAIPlugin] keeps large payloads.

    Keys are hex digests of the stored bytes (safe as file names and object keys); the same key always holds the
    same bytes, so `put` may overwrite, and may skip the write when the key exists. Every worker and client of the
    namespace must reach the same store: a payload stored by one worker is read by another when the run moves.
    Nothing is deleted by the plugin: expire objects with your store's lifecycle rules, no sooner than the
    namespace's history retention.

    An S3-compatible store (S3, MinIO, R2, GCS in interoperability mode) is a few lines over your own client; for
    example with `boto3` in a thread:

    ```python
    import asyncio

    import boto3


    class S3ClaimCheckStore:
        def __init__(self, bucket: str, prefix: str = 'temporal-payloads/') -> None:
            self.s3, self.bucket, self.prefix = boto3.client('s3'), bucket, prefix

        async def put(self, key: str, data: bytes) -> None:
            await asyncio.to_thread(self.s3.put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data)

        async def get(self, key: str) -> bytes:
            try:
                response = await asyncio.to_thread(self.s3.get_object, Bucket=self.bucket, Key=self.prefix + key)
            except self.s3.exceptions.NoSuchKey:
                raise KeyError(key) from None
            return response['Body'].read()
    ```
    """

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`; when this returns, `get(key)` must return it from any worker."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`.

        Raises:
            KeyError: Nothing is stored under `key`.
        """
        ...


class FileClaimCheckStore:
    """A [`ClaimCheckStore`][durable_temporal.ClaimCheckStore] in a directory: for one machine, or a shared volume.

    Each payload is a file named by its key (under a two-character subdirectory), written to a temporary name and
    renamed, so a reader never sees half a file.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Keep payloads under `directory` (created when missing)."""
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not key or not all(c in '0123456789abcdef' for c in key):
            raise ValueError(f'Not a claim-check key: {key!r}')
        return self.directory / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        """Write `data` to the file of `key` (skipped when it exists: the same key holds the same bytes)."""
        await asyncio.to_thread(self._write, self._path(key), data)

    async def get(self, key: str) -> bytes:
        """The contents of the file of `key`.

        Raises:
            KeyError: The file does not exist.
        """
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f'.{path.name}.{uuid.uuid4().hex}')
        temporary.write_bytes(data)
        os.replace(temporary, path)


class ClaimCheckCodec(PayloadCodec, WithSerializationContext):
    """A payload codec that moves payloads over `threshold` bytes to `store`, after the optional `inner` codec.

    [`PydanticAIPlugin(claim_check=store)`][durable_temporal.PydanticAIPlugin] installs it around the client's own
    codec; build it yourself only for a client without the plugin (e.g. a codec server for the Temporal UI).
    """

    def __init__(
        self,
        store: ClaimCheckStore,
        *,
        threshold: int = DEFAULT_CLAIM_CHECK_THRESHOLD,
        inner: PayloadCodec | None = None,
    ) -> None:
        """Store payloads over `threshold` bytes (after `inner` encoded them) in `store`."""
        if threshold < 0:
            raise ValueError(f'The claim-check threshold must be at least 0 bytes, got {threshold}.')
        self.store = store
        self.threshold = threshold
        self.inner = inner

    def with_context(self, context: SerializationContext) -> Self:
        """A copy whose inner codec has `context` (when it uses one)."""
        if not isinstance(self.inner, WithSerializationContext):
            return self
        inner = self.inner.with_context(context)
        if inner is self.inner:
            return self
        return type(self)(self.store, threshold=self.threshold, inner=inner)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encode with the inner codec, then replace payloads over the threshold with references."""
        encoded = list(payloads) if self.inner is None else await self.inner.encode(payloads)
        return list(await asyncio.gather(*(self._check_in(payload) for payload in encoded)))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Fetch the payloads that references name, then decode with the inner codec."""
        fetched = list(await asyncio.gather(*(self._check_out(payload) for payload in payloads)))
        return fetched if self.inner is None else await self.inner.decode(fetched)

    async def _check_in(self, payload: Payload) -> Payload:
        size = payload.ByteSize()
        if size <= self.threshold:
            return payload
        data = payload.SerializeToString(deterministic=True)
        key = hashlib.sha256(data).hexdigest()
        await self.store.put(key, data)
        return Payload(
            metadata={'encoding': REFERENCE_ENCODING, _SIZE_KEY: str(size).encode()}, data=key.encode('ascii')
        )

    async def _check_out(self, payload: Payload) -> Payload:
        if payload.metadata.get('encoding') != REFERENCE_ENCODING:
            return payload
        key = payload.data.decode('ascii')
        try:
            data = await self.store.get(key)
        except KeyError:
            raise RuntimeError(
                f'The claim-check store {self.store!r} has no payload {key!r}, which the workflow history refers '
                'to. Every worker and client of the namespace must use the same store, and stored payloads must '
                "outlive the namespace's history retention."
            ) from None
        return Payload.FromString(data)
