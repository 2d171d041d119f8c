"""The C heap: give memory an ingest freed back to the operating system."""

from __future__ import annotations

import ctypes


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc `malloc_trim(0)`, all arenas). The Qdrant engine and
    onnxruntime allocate with the system malloc from many threads; what an ingest frees stays mapped in those
    threads' arenas until trimmed. A no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
