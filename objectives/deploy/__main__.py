"""``python -m objectives.deploy STUDY --trial N --engine vllm|sglang|trtllm [--storage URL] [-o DIR]``."""
import sys

from . import main

sys.exit(main())
