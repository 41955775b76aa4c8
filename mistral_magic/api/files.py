"""The Files API (``/v1/files``): upload JSONL for batch jobs, read result files back.

    files = Files(client)                     # client: a MistralClient
    uploaded = files.upload(b'{"custom_id": ...}\\n', "rows.jsonl", purpose="batch")
    data = files.download(job.output_file)    # bytes (JSONL for batch results)

La Plateforme only; a vLLM server has no Files API (its 404 becomes an InvalidRequestError).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ResponseFormatError
from .rest import path_id, request_bytes, request_json, with_query

if TYPE_CHECKING:
    from .client import MistralClient

MAX_FILE_BYTES = 512 * 1024 * 1024  # La Plateforme's per-file limit


@dataclass
class FileObject:
    """A stored file as ``/v1/files`` describes it. ``size`` is the wire field ``bytes``."""

    id: str
    filename: str = ""
    size: int | None = None
    purpose: str = ""
    sample_type: str = ""
    source: str = ""
    num_lines: int | None = None
    created_at: int = 0
    deleted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: Any) -> FileObject:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ResponseFormatError("The server's answer is not a File object (no `id`).")

        def opt_int(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            id=data["id"],
            filename=str(data.get("filename") or ""),
            size=opt_int("bytes"),
            purpose=str(data.get("purpose") or ""),
            sample_type=str(data.get("sample_type") or ""),
            source=str(data.get("source") or ""),
            num_lines=opt_int("num_lines"),
            created_at=opt_int("created_at") or 0,
            deleted=bool(data.get("deleted")),
            raw=dict(data),
        )


def _quoted(value: str) -> str:
    """A multipart header parameter value (quotes and line breaks escaped as browsers do)."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_multipart(
    fields: Mapping[str, str], file_field: str, filename: str, content: bytes
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text ``fields`` and one file; (body, content type)."""
    boundary = secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
            f'filename="{_quoted(filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Files:
    """``/v1/files`` through a :class:`MistralClient` (its key, base URL, retries)."""

    def __init__(self, client: MistralClient) -> None:
        self.client = client

    def upload(self, content: bytes, filename: str, *, purpose: str = "batch") -> FileObject:
        """``POST /files`` (multipart). Always pass ``purpose``: its default changed over time."""
        if len(content) > MAX_FILE_BYTES:
            raise ValueError(
                f"{filename} is {len(content) / 2**20:.0f} MB; La Plateforme accepts files of "
                "at most 512 MB. Split the job into smaller ones."
            )
        body, content_type = encode_multipart({"purpose": purpose}, "file", filename, content)
        answer = request_json(
            self.client, "POST", "/files", content=body, content_type=content_type
        )
        return FileObject.from_wire(answer)

    def get(self, file_id: str) -> FileObject:
        """``GET /files/{id}``."""
        return FileObject.from_wire(request_json(self.client, "GET", f"/files/{path_id(file_id)}"))

    def list(
        self, *, purpose: str | None = None, page: int = 0, page_size: int = 100
    ) -> list[FileObject]:
        """One page of ``GET /files``."""
        path = with_query("/files", {"page": page, "page_size": page_size, "purpose": purpose})
        answer = request_json(self.client, "GET", path)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list):
            raise ResponseFormatError("The server's file list has no `data` array.")
        return [FileObject.from_wire(item) for item in data]

    def delete(self, file_id: str) -> bool:
        """``DELETE /files/{id}``; True when the server says it is gone."""
        answer = request_json(self.client, "DELETE", f"/files/{path_id(file_id)}")
        return bool(isinstance(answer, Mapping) and answer.get("deleted"))

    def download(self, file_id: str) -> bytes:
        """``GET /files/{id}/content``: the file's bytes."""
        return request_bytes(
            self.client,
            "GET",
            f"/files/{path_id(file_id)}/content",
            accept="application/octet-stream",
            max_bytes=MAX_FILE_BYTES,
        )
