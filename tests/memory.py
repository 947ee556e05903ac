"""Peak memory of a piece of code, measured in a fresh process so earlier tests do not count."""

import subprocess
import sys

AWKWARD_RATE = 44101  # shares no factor with 8 or 16 kHz: torchaudio's kernel had 16,000 rows of 44,101 taps

# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report
# the pytest process's own peak whenever that is higher.
REPORT = "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1])"


def peak_rss_mb(code: str) -> float:
    """Peak resident memory (MB) of a fresh Python that runs ``code``, as that process measures it."""
    done = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024  # kB
