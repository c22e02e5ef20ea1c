import os
import platform
import subprocess
import sys

import pytest

from helpers import HERE

PROBE = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from gpen_ext.allocator import keep_freed_memory
if {keep}:
    assert keep_freed_memory()
def forward_like_pass():  # tensors of a network's sizes, made, used and freed in turn
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    kept = None
    for megabytes in (64, 128, 32, 256, 64, 128):
        tensor = torch.ones(megabytes * 2 ** 20, dtype=torch.uint8)
        kept = tensor if kept is None or kept.numel() < tensor.numel() else kept
    del tensor, kept
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(3):
    forward_like_pass()
# the fewest of three passes: a memory reclaimer (this VM runs DAMON's) may take back some of
# the kept pages between two passes, once in a while
print(min(forward_like_pass() for _ in range(3)))
"""


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc",
                    reason="glibc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    def second_allocation_faults(keep):
        code = PROBE.format(root=str(HERE.parent), keep=keep)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, env=env).stdout)

    fresh = second_allocation_faults(False)  # every page of every tensor mapped afresh
    assert fresh > 100000 and second_allocation_faults(True) < fresh / 10
