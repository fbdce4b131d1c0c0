"""The model registry: stored versions (versions.py) and the promoted pointer the scorer follows.

    PRODUCTION                  the promoted version, then `sha256:<digest of its manifest>`

The digest in PRODUCTION binds the pointer to the exact files promotion verified: a pointer written by
hand (a bare version name), or a version altered after it was promoted, is refused. It does not
authenticate who wrote it: anyone who can write the directory and compute sha256 can still point at a
model of trusted types (model_file.py), which can make bad decisions but run no code. PRODUCTION is
replaced atomically, so a reader never sees half a pointer.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from payment_platform.model.model_file import MODEL_FILE, one_line
from payment_platform.model.registry_errors import (
    InvalidModelVersionError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistryError,
)
from payment_platform.model.versions import (
    CHECKSUM_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    PRODUCTION_POINTER,
    LoadedModel,
    ModelVersions,
    check_version_name,
    sha256,
)

__all__ = [
    "CHECKSUM_FILE",
    "FEATURES_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "PRODUCTION_POINTER",
    "InvalidModelVersionError",
    "LoadedModel",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelRegistryError",
    "ProductionPointer",
]

logger = logging.getLogger(__name__)

_POINTER_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class ProductionPointer:
    """What PRODUCTION says: the promoted version and the sha256 of its manifest when it was promoted."""

    version: str
    manifest_sha256: str


class ModelRegistry(ModelVersions):
    """Versions of the fraud model stored under `root`, and which one is in production."""

    def promote(self, version: str) -> None:
        """Point PRODUCTION at a version and its manifest's digest, atomically, once the version loads.

        Loading it first means the pointer never names a version the scorer would refuse.
        """
        digest = sha256(self.verify(version) / CHECKSUM_FILE)
        self._load(version, manifest_sha256=digest)
        pointer = self.root / PRODUCTION_POINTER
        fd, temp_name = tempfile.mkstemp(prefix=f".{PRODUCTION_POINTER}.", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as temp:
                temp.write(f"{version}\nsha256:{digest}\n")
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, pointer)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        logger.info("promoted model version %s", version)

    def production_version(self) -> str | None:
        """The version PRODUCTION names, or None when nothing was ever promoted.

        Only the name is checked: load_production verifies the digest. Promotion reads it to log
        what it replaces, and must still work when the pointer was tampered with.
        """
        lines = self._pointer_lines()
        return None if lines is None else _pointer_version(lines)

    def production_pointer(self) -> ProductionPointer | None:
        """The pointer as promotion wrote it; None when nothing was ever promoted.

        Raises InvalidModelVersionError for a name outside the registry, and ModelIntegrityError for
        a pointer without the digest promotion writes (e.g. a version name written by hand).
        """
        lines = self._pointer_lines()  # read once: promotion may replace it meanwhile
        if lines is None:
            return None
        version = _pointer_version(lines)
        digest = _POINTER_DIGEST.fullmatch(lines[1].strip()) if len(lines) == 2 else None
        if digest is None:
            raise ModelIntegrityError(
                f"{PRODUCTION_POINTER} names model {version} without the digest promotion writes: "
                "it was not written by promotion; promote a model instead of editing the pointer"
            )
        return ProductionPointer(version, digest.group(1))

    def load_promoted(self, pointer: ProductionPointer) -> LoadedModel:
        """The model a pointer names, refused unless its manifest still has the pointer's digest."""
        return self._load(pointer.version, manifest_sha256=pointer.manifest_sha256)

    def load_production(self) -> LoadedModel | None:
        """The promoted model, pointer and files verified; None when nothing was ever promoted."""
        pointer = self.production_pointer()
        return None if pointer is None else self.load_promoted(pointer)

    def _pointer_lines(self) -> list[str] | None:
        try:
            text = (self.root / PRODUCTION_POINTER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelIntegrityError(f"{PRODUCTION_POINTER} cannot be read: {one_line(exc)}") from None
        return text.splitlines()


def _pointer_version(lines: list[str]) -> str:
    version = lines[0].strip() if lines else ""
    check_version_name(version)
    return version
