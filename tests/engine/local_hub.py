# SPDX-License-Identifier: GPL-3.0-or-later
"""A Hugging Face Hub on localhost, serving folders, for testing real downloads offline.

It answers the few endpoints huggingface_hub's `snapshot_download` uses (repository info,
file tree, file metadata and contents, with byte ranges for resuming), so the real
client code runs against it when HF_ENDPOINT points here. Files are served in chunks with
an optional pause between them, so a test can watch progress and cancel mid-download.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


class LocalHub:
    """`repos`: {"owner/name": folder}. Use as a context manager; `url` is the endpoint."""

    def __init__(self, repos: dict[str, str], pause_per_chunk: float = 0.0) -> None:
        self.repos = repos
        self.pause_per_chunk = pause_per_chunk
        self.requests: list[str] = []
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo: str) -> dict[str, str]:
        """Repository path -> file on disk."""
        root = self.repos[repo]
        found = {}
        for folder, _dirs, names in os.walk(root):
            for name in names:
                full = os.path.join(folder, name)
                found[os.path.relpath(full, root).replace(os.sep, "/")] = full
        return found


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # quiet test output

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo, action = "/".join(parts[2:4]), parts[4]
            if repo not in self.hub.repos:
                return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
            files = self.hub.files(repo)
            if action == "revision":
                return self._json({"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in sorted(files)]})
            if action == "tree":
                return self._json([
                    {"type": "file", "path": name, "size": os.path.getsize(full), "oid": _sha256(full)[:40],
                     "lfs": {"oid": _sha256(full), "size": os.path.getsize(full), "pointerSize": 134}}
                    for name, full in sorted(files.items())
                ])
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, file_name = "/".join(parts[:2]), "/".join(parts[4:])
            full = self.hub.files(repo).get(file_name) if repo in self.hub.repos else None
            if full is None:
                return self._json({"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
            return self._file(full, send_body)
        return self._json({"error": "not found"}, 404)

    def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _file(self, full: str, send_body: bool) -> None:
        size = os.path.getsize(full)
        start = 0
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start = int(ranged[6:].split("-")[0] or 0)
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{_sha256(full)}"')
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        if not send_body:
            return
        with open(full, "rb") as f:
            f.seek(start)
            for block in iter(lambda: f.read(CHUNK), b""):
                try:
                    self.wfile.write(block)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client stopped (a cancelled download)
                if self.hub.pause_per_chunk:
                    time.sleep(self.hub.pause_per_chunk)
