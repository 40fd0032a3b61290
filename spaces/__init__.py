"""Ready search spaces over hardware, parallelism, quantization, batching and serving.

    import spaces
    space = spaces.llm_serving("Llama-3.1-70B", ["H100", "H200", "B200"], max_gpus=8, input_len=2048)
    # or compose your own:
    space = spaces.compose(spaces.hardware(["H100", "L40S"], 8), spaces.parallelism("Llama-3.1-8B", 8, dp=False),
                           spaces.quantization(["H100", "L40S"]), constraints=["tp * pp == n_gpus"])

Every validity rule is a constraint expression (stored with a study) generated from the catalog.
"""
from .batching import batching
from .compose import compose
from .hardware import hardware
from .llm import llm_serving
from .parallelism import parallelism
from .quantization import FORMATS, quantization
from .serving import serving
from .training import training

__all__ = ["FORMATS", "batching", "compose", "hardware", "llm_serving", "parallelism", "quantization", "serving", "training"]
