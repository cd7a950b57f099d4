import os
import subprocess
import sys

import pytest

# Minor page faults of 20 forward passes of a small conv net on 200 images, after one warm-up pass.
SCRIPT = """
import resource, torch
import genlab
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1))
x = torch.randn(200, 1, 28, 28)
with torch.no_grad():
    net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(tuning: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                         env={**os.environ, "GENLAB_MALLOC_TUNING": tuning})
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_importing_genlab_makes_repeated_tensor_work_reuse_memory():
    # Untuned, every pass maps fresh pages (~14,000 faults a pass here); tuned, the freed blocks are reused.
    assert page_faults("1") * 5 < page_faults("0")
