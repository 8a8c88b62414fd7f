# SPDX-License-Identifier: GPL-3.0-or-later
"""Every download (models, preview decoders, detector weights) fails the same way when the hub
drops the connection: a DiffusionError that says what to do, never a raw client exception.

The hub here is a localhost server that accepts each connection and closes it at once, as a
dropped network does; huggingface_hub's HTTP client raises its own error for that, which is
not an OSError.
"""
import json
import os
import socket
import subprocess
import sys
import threading

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DroppingServer:
    """Accepts every connection and closes it without answering."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        # close() alone leaves the thread blocked in accept() for the rest of the session (and in
        # every crash dump); shutting the socket down first wakes it.
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.socket.close()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


# Runs in a child process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when imported.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from engine import DiffusionError, models, previews
from engine.detectors import detect

calls = {
    "model": lambda: models.resolve_base("someone/some-model", sys.argv[2], allow_online=True),
    "preview decoder": lambda: previews.find_tiny_vae("sd15", allow_online=True, required=True),
    "detector": lambda: detect("normal_bae", np.zeros((64, 64, 3), np.uint8), allow_online=True),
}
said = {}
for name, call in calls.items():
    try:
        call()
        said[name] = "no error"
    except DiffusionError as error:
        said[name] = "DiffusionError: " + str(error)
    except Exception as error:
        said[name] = f"raw {type(error).__module__}.{type(error).__name__}: {error}"
print(json.dumps(said))
"""


def test_a_dropped_connection_is_a_message_for_every_download(sandbox, tmp_path):
    with DroppingServer() as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "huggingface"), HF_HUB_ETAG_TIMEOUT="5",
                   HF_HUB_DOWNLOAD_TIMEOUT="5")
        env.pop("HF_HUB_OFFLINE")
        out = subprocess.run([sys.executable, "-c", CHILD, REPO_ROOT, str(tmp_path / "models")], env=env,
                             capture_output=True, text=True, timeout=300)
        accepted = hub.accepted
    assert out.returncode == 0, out.stderr[-3000:]
    said = json.loads(out.stdout.strip().splitlines()[-1])
    assert accepted >= 3  # every call did try the hub
    for name, message in said.items():
        assert message.startswith("DiffusionError: "), f"{name}: {message}"
        assert "cannot be reached" in message and "check the internet connection" in message, f"{name}: {message}"
    assert "someone/some-model" in said["model"]
    assert "madebyollin/taesd" in said["preview decoder"]
    assert "lllyasviel/Annotators" in said["detector"]
