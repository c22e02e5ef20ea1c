"""Verified downloads: to a temporary file, resumable, checked, then renamed into place."""

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from .checkpoints import CheckpointError, verify_checkpoint

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30
PARTIAL_SUFFIX = ".part"


class DownloadError(RuntimeError):
    """No source gave a verified file; the message names the URLs and where to put it."""


class _Rejected(Exception):
    """The bytes arrived but are not the expected file."""


def download_file(urls, dest, sha256=None, expected_bytes=None, verify=None, progress=True,
                  attempts=3):
    """Fetch `dest` from the first source that yields a verified file.

    Bytes go to `dest` + '.part' (never a name a loader picks up); an interrupted transfer
    resumes from there with an HTTP range request. The finished file is checked (size and
    SHA-256 when known, then `verify(path)`, which raises on a bad file) and only then
    renamed to `dest`. A transfer cut off on every try leaves its '.part' for the next call to
    resume; rejected bytes are deleted. Returns the path and records the SHA-256 beside it."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the models folder {dest.parent}: "
                            f"{error.strerror or error}") from None
    partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
    failures = []
    for url in urls:
        for attempt in range(1, attempts + 1):
            try:
                _transfer(url, partial, progress, label=dest.name)
                digest = _check(partial, sha256, expected_bytes, verify)
            except _Rejected as error:
                failures.append(f"{url}: {error}")
                partial.unlink(missing_ok=True)
                break
            except (urllib.error.URLError, OSError, ConnectionError) as error:
                reason = getattr(error, "reason", None) or error
                log.warning("download of %s failed (attempt %d of %d): %s",
                            url, attempt, attempts, reason)
                if isinstance(error, urllib.error.HTTPError) or attempt == attempts:
                    failures.append(f"{url}: {reason}")
                    break
                continue
            os.replace(partial, dest)
            dest.with_name(dest.name + ".sha256").write_text(f"{digest}  {dest.name}\n")
            log.info("downloaded %s (sha256 %s)", dest, digest)
            return dest
    raise DownloadError(
        f"could not download {dest.name} from any source:\n  " + "\n  ".join(failures)
        + f"\nDownload it yourself and place it in {dest.parent}{os.sep} as {dest.name}")


def _transfer(url, partial, progress, label):
    """Append the rest of `url` to `partial`, restarting when the server ignores the range."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "sd-webui-gpen"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not have:  # 416: our partial file is already complete or wrong
            raise
        partial.unlink()
        return _transfer(url, partial, progress, label)
    with response:
        if have and response.status != 206:
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        bar = _progress_bar(progress, total, have, label)
        try:
            with open(partial, "ab" if have else "wb") as out:
                received = have
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _check(path, sha256, expected_bytes, verify):
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise _Rejected(f"got {size} bytes, expected {expected_bytes}")
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256.lower():
        raise _Rejected(f"SHA-256 mismatch: got {digest}, expected {sha256}")
    if verify is not None:
        try:
            verify(path)
        except (CheckpointError, ValueError) as error:
            raise _Rejected(f"not a valid checkpoint: {error}") from None
    return digest


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress_bar(enabled, total, initial, label):
    if not enabled:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"Downloading {label}")


def ensure_model(model, download=True, progress=True):
    """The checkpoint file of a ModelRef (registry.resolve_model), downloading a missing
    release if allowed."""
    if model.path.is_file():
        return model.path
    folder = model.path.parent
    if model.release is None:
        raise DownloadError(f"{model.name} is not in {folder}")
    info = model.release
    if not download:
        raise DownloadError(f"{info.filename} is not installed; download it from "
                            f"{' or '.join(info.urls)} and place it in {folder}{os.sep}")
    return download_file(info.urls, model.path, sha256=info.sha256, expected_bytes=info.bytes,
                         verify=verify_checkpoint, progress=progress)
