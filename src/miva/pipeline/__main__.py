"""`python -m miva.pipeline [PRESET] [OUTPUT]`: compile the DAG to a pipeline YAML
(what `miva pipeline compile -c PRESET --output OUTPUT` does)."""

import sys

from miva.config import DEFAULT_PRESET, load_config
from miva.pipeline.submit import compile_pipeline

if __name__ == "__main__":
    preset = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PRESET
    output = sys.argv[2] if len(sys.argv) > 2 else "pipeline.yaml"
    print(f"compiled {compile_pipeline(load_config(preset), preset, [], output)}")
