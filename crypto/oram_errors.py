"""Exceptions of the Path ORAM core (crypto/oram.py, crypto/oram_integrity.py).

Hierarchy::

    OramError
    ├── OramUsageError       local code misused the ORAM object (raised at once)
    ├── OramIntegrityError   a bucket (or the root) read from storage is not the one the
    │                        client last wrote: flipped, swapped, rolled back, injected or
    │                        deleted; raised before any client state changes
    ├── StashOverflow        the access would leave more blocks in the stash than its fixed
    │                        capacity; nothing was changed or written (fails closed)
    └── OramFull             a write of a new address when the ORAM already holds N blocks

Messages are fixed phrases plus bucket indices (public information); they never contain
block contents, addresses or keys.
"""

from __future__ import annotations


class OramError(Exception):
    """Base class of every ORAM error."""


class OramUsageError(OramError):
    """Local misuse: wrong op/data combination, a request from another access, and so on."""


class OramIntegrityError(OramError):
    """Storage returned a bucket that does not match what the client last wrote."""


class StashOverflow(OramError):
    """The stash would exceed its fixed capacity; the access was not applied."""


class OramFull(OramError):
    """Every one of the N block slots is in use; delete something first."""
