"""Finished partitions on disk (``cache=PATH``), signed so that only our own are loaded.

A run with ``cache=PATH`` writes each partition's result as it finishes, so a kernel
restart or crash loses nothing: ``resume=True`` with the same ``cache=`` reads them back.
Entries are pickles, and unpickling runs code. So:

- the directory is created private (0700), and one that another user owns or can
  write to is refused in one line;
- each entry carries an HMAC-SHA256 over what it is (the run's label, the partition,
  the digest of the partition's data) and its bytes, keyed by a per-user secret kept
  outside the cache (``$XDG_CONFIG_HOME/jupyter_par/secret``, 0600);
- an entry whose signature does not match (corrupt, truncated, copied from elsewhere,
  written for other data) is ignored with a warning and never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import stat
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import JupyterParWarning, UsageError

_MAGIC = b"JPC1"
_SIGNATURE = 32  # bytes of an HMAC-SHA256


class CacheWarning(JupyterParWarning):
    """A cache entry was ignored (corrupt, foreign, or unreadable)."""


def secret_path() -> Path:
    """Where the per-user key lives: outside any cache directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "jupyter_par" / "secret"


def _secret() -> bytes:
    """The per-user key, created (0600, in a 0700 directory) on first use."""
    path = secret_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        info = os.stat(path)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            msg = (f"the cache key {path} is readable or owned by someone else (mode "
                   f"{stat.S_IMODE(info.st_mode):o}); remove it so a private one is made")
            raise UsageError(msg) from None
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    return path.read_bytes()


def _private_dir(path: str) -> Path:
    """``path`` as a directory only this user can write, created so; else a UsageError."""
    folder = Path(path).expanduser()
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask, never widened
    info = os.stat(folder)
    if not stat.S_ISDIR(info.st_mode):
        msg = f"cache={path!r} is not a directory"
        raise UsageError(msg)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        msg = (f"cache={path!r} can be written by others (mode {stat.S_IMODE(info.st_mode):o}, "
               f"owner uid {info.st_uid}): its entries could run code when loaded; use a "
               "directory only you can write (chmod 700)")
        raise UsageError(msg)
    return folder


def dumps(value: Any) -> bytes:
    """``value`` as bytes: pickle, or dill for what pickle refuses (notebook objects)."""
    try:
        return b"P" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - lambdas, notebook classes: dill handles them
        import dill

        return b"D" + dill.dumps(value, recurse=True)


def loads(data: bytes) -> Any:
    """The inverse of :func:`dumps`."""
    if data[:1] == b"D":
        import dill

        return dill.loads(data[1:])
    return pickle.loads(data[1:])


class DiskCache:
    """Signed entries of finished partitions under one private directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = _private_dir(path)
        self.key = _secret()

    # -- names ----------------------------------------------------------------------
    @staticmethod
    def _run_name(label: str) -> str:
        return hashlib.sha256(label.encode()).hexdigest()[:20]

    def _entry(self, label: str, total: int, index: int, digest: str) -> tuple[Path, bytes]:
        identity = f"{label}\0{total}\0{index}\0{digest}".encode()
        name = hashlib.sha256(identity).hexdigest()[:32]
        return self.folder / f"{self._run_name(label)}-{index}-{name}.part", identity

    def _sign(self, identity: bytes, payload: bytes) -> bytes:
        return hmac.new(self.key, _MAGIC + identity + payload, hashlib.sha256).digest()

    # -- writing --------------------------------------------------------------------
    def _write(self, target: Path, data: bytes) -> None:
        """Write ``target`` in one step: a reader sees the whole entry or none."""
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".writing-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def begin(self, label: str, digests: list[str]) -> None:
        """Note which data this run's partitions hold (to say why nothing matched later)."""
        manifest = {"label": label, "at": time.time(), "digests": digests}
        self._write(self.folder / f"{self._run_name(label)}.json",
                    json.dumps(manifest).encode())

    def put(self, label: str, total: int, index: int, digest: str, value: Any) -> None:
        """Keep one finished partition's result; one that cannot be pickled is skipped."""
        try:
            payload = dumps(value)
        except Exception as exc:  # noqa: BLE001 - said once, the run goes on
            warnings.warn(f"jupyter_par: partition {index} was not cached: its result cannot "
                          f"be pickled ({type(exc).__name__}: {exc})", CacheWarning, stacklevel=2)
            return
        target, identity = self._entry(label, total, index, digest)
        try:
            self._write(target, _MAGIC + self._sign(identity, payload) + payload)
        except OSError as exc:  # a full disk must not stop the run: it only loses the copy
            warnings.warn(f"jupyter_par: partition {index} was not cached in {self.path}: "
                          f"{exc}", CacheWarning, stacklevel=2)

    # -- reading --------------------------------------------------------------------
    def manifest(self, label: str) -> dict[str, Any] | None:
        """What the last run of ``label`` with this cache had (JSON: no code runs)."""
        try:
            data = json.loads((self.folder / f"{self._run_name(label)}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def get(self, label: str, total: int, index: int, digest: str) -> tuple[bool, Any]:
        """``(True, value)`` for a matching, signed entry; ``(False, None)`` otherwise."""
        target, identity = self._entry(label, total, index, digest)
        try:
            data = target.read_bytes()
        except OSError:
            return False, None
        signature, payload = data[len(_MAGIC):len(_MAGIC) + _SIGNATURE], \
            data[len(_MAGIC) + _SIGNATURE:]
        if data[:len(_MAGIC)] != _MAGIC or not hmac.compare_digest(
                signature, self._sign(identity, payload)):
            warnings.warn(f"jupyter_par: ignored cache entry {target}: its signature does not "
                          "match this user's key (corrupt, or written elsewhere); computing "
                          f"partition {index} again", CacheWarning, stacklevel=2)
            return False, None
        try:
            return True, loads(payload)
        except Exception as exc:  # noqa: BLE001 - e.g. a class the notebook no longer has
            warnings.warn(f"jupyter_par: cache entry {target} could not be loaded "
                          f"({type(exc).__name__}: {exc}); computing partition {index} again",
                          CacheWarning, stacklevel=2)
            return False, None
