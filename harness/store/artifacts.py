"""A shared artifact store (Optuna's artifact API) and the local cache of what was fetched from it.

An artifact is one file, uploaded once under a fresh id (a UUID) and never changed, so the cache
under HARNESS_HOME/artifacts/<id>/ is valid forever and two readers may fill it at once (each
writes its own temp file, one whole copy wins). A folder travels as one tar archive and is
unpacked once into the cache.

Stores: a directory, typically on a shared filesystem (`optuna.artifacts.FileSystemArtifactStore`),
or an S3-compatible bucket, `s3://bucket/prefix` (`object_store.py`, Optuna's Boto3ArtifactStore).
What a trial uploads and which ids belong to which trial: `study.py`.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from contextlib import closing
from pathlib import Path

from harness.errors import UserError
from harness.runtime.files import atomic_path, publish_dir
from harness.runtime.secrets import masked_userinfo
from harness.store import object_store, paths

ARCHIVE = "folder.tar"  # the file name a folder is uploaded under


class ArtifactMissing(Exception):
    """The store has no artifact with this id (deleted, or a different store than the one written to)."""


def url_problem(url: str) -> str | None:
    """Why `url` cannot name an artifact store, or None: a directory path, a file:// URL or s3://bucket/prefix."""
    if object_store.is_s3(url):
        return object_store.url_problem(url)
    if "://" in url and not url.startswith("file://"):
        return (f"expected a directory (a shared filesystem for several machines) or s3://bucket/prefix; "
                f"{url.split('://')[0]}:// stores are not supported")
    return None


def shown_url(url: str) -> str:
    """An artifact store's URL fit for messages (one with a key in it is masked)."""
    return masked_userinfo(url)


def is_local(url: str) -> bool:
    """A directory (as this machine sees it), not an object store every machine reaches by the same URL."""
    return not object_store.is_s3(url)


class ArtifactStore:
    """An artifact store opened from a URL: a directory path (or file:// URL), or s3://bucket/prefix.

    `create`: the caller writes (a sweep worker): a directory is made if missing, and a bucket is checked
    for writing under the prefix (buckets are never created)."""

    def __init__(self, url: str, create: bool = False, label: str = "--artifacts"):
        if problem := url_problem(url):
            raise UserError(f"{label} {shown_url(url)}: {problem}")
        self.url = url
        if object_store.is_s3(url):
            self._store = object_store.open_store(url, label, writable=create)
            return
        path = Path(url.removeprefix("file://")).expanduser()
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(f"{label} {url}: cannot create the directory: {err.strerror}") from None
        if not path.is_dir():
            raise UserError(f"{label} {url}: no such directory here (give --artifacts with where this machine sees the store)")
        from optuna.artifacts import FileSystemArtifactStore

        self._store = FileSystemArtifactStore(path)

    def __str__(self) -> str:
        return self.url

    @property
    def optuna_store(self):
        """Optuna's own store object (optuna-dashboard lists and serves artifacts through it)."""
        return self._store

    # ------------------------------------------------------------ writing
    def upload_file(self, path: Path, study_or_trial, storage=None) -> str:
        """Upload one file; returns its artifact id (recorded on the trial or study, as Optuna does)."""
        from optuna.artifacts import upload_artifact

        return upload_artifact(artifact_store=self._store, file_path=str(path), study_or_trial=study_or_trial, storage=storage)

    def upload_folder(self, folder: Path, study_or_trial, storage=None) -> str:
        """Upload a folder as one tar archive; returns its artifact id."""
        with tempfile.TemporaryDirectory(prefix="harness-upload-") as tmp:
            archive = Path(tmp) / ARCHIVE
            with tarfile.open(archive, "w") as tar:  # not compressed: LoRA weights do not compress
                for item in sorted(Path(folder).iterdir()):
                    tar.add(item, arcname=item.name)
            return self.upload_file(archive, study_or_trial, storage)

    # ------------------------------------------------------------ reading
    def fetch_file(self, artifact_id: str, name: str) -> Path:
        """The artifact as a local file `name` in the cache, downloaded on first use."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        final = paths.artifact_cache(artifact_id) / name
        if final.is_file():
            return final
        try:
            reader = self._store.open_reader(artifact_id)
        except (ArtifactNotFound, ValueError) as err:  # ValueError: an id that is not a plain name
            raise ArtifactMissing(f"artifact {artifact_id} is not in {self.url}") from err
        with closing(reader), atomic_path(final) as tmp, open(tmp, "wb") as out:
            shutil.copyfileobj(reader, out, 1 << 20)
        return final

    def fetch_folder(self, artifact_id: str) -> Path:
        """A folder uploaded by `upload_folder`, unpacked once into the cache."""
        final = paths.artifact_cache(artifact_id) / "folder"
        if final.is_dir():
            return final
        archive = self.fetch_file(artifact_id, ARCHIVE)
        try:
            with publish_dir(final) as tmp, tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")  # refuses absolute paths, links out of the folder, devices
        except OSError:
            if not final.is_dir():
                raise
            # another reader unpacked it first
        except tarfile.TarError as err:
            raise ArtifactMissing(f"artifact {artifact_id} in {self.url} is not a readable archive ({err})") from None
        return final

