"""``python -m server`` on a machine where Linux "sees" an Edge TPU (a USB id in sysfs).

    python tests/sees_edgetpu.py [python -m server's arguments]

This machine has no Edge TPU, so ``--tpu auto`` would not probe at all. This launcher
replaces only the sysfs scan (``runtime.edgetpu_devices``) and runs the real entry point;
with ``--edgetpu-lib`` naming a stand-in library (tests/standin.py), the real probe then
tries it in its child process.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.hw import runtime as rt  # noqa: E402

rt.edgetpu_devices = lambda *args, **kwargs: ["usb:9-9"]

from server.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
