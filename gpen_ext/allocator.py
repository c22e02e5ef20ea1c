"""Keep freed memory for reuse, in a process this project owns (the command line).

Under glibc's default malloc every large tensor is a fresh mapping that the kernel faults in
and zeroes page by page, and is unmapped again when freed. A GPEN forward pass allocates
gigabytes that way: at 2048 on this project's CPU, 1.4 M page faults and about 40% of the
time. With the mmap and trim thresholds raised, freed blocks stay in the heap and the next
allocations reuse them; with one arena, threads other than the main one (faces side by side,
a Ray worker's calls) use that heap too, where their own arenas would map every tensor over
64 MB afresh (12% slower at 512 with four faces side by side). The WebUI's Linux launcher gets the same effect by preloading
tcmalloc, so the WebUI adapter leaves the host's allocator alone.
"""

import ctypes
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
LARGEST_INT = 2 ** 31 - 1


def keep_freed_memory():
    """Tell glibc to keep freed memory for reuse; False where that is not glibc."""
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl and others have no such tuning
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, LARGEST_INT)) and bool(libc.mallopt(M_ARENA_MAX, 1))
