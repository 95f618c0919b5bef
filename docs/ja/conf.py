"""The Japanese manual: the shared settings (docs/conf_common.py), in Japanese."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conf_common import *  # noqa: E402,F403

language = "ja"
