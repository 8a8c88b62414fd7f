# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes small, valid pure-Python wheels for installer tests (real pip installs them)."""
import base64
import hashlib
import os
import zipfile
from typing import Iterable, Mapping


def write_wheel(folder: str, name: str, version: str, files: Mapping[str, str],
                requires: Iterable[str] = ()) -> str:
    """A `py3-none-any` wheel of `files` (archive path -> source) in folder; returns its path."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: scene-diffusion-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = {**files, f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel}
    record = "".join(f"{path},{_hash(data)},{len(data.encode())}\n" for path, data in entries.items())
    entries[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stem}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for archive_path, data in entries.items():
            archive.writestr(archive_path, data)
    return path


def _hash(data: str) -> str:
    digest = hashlib.sha256(data.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
