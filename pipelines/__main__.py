"""`python -m pipelines [PRESET] [OUTPUT]`: compile the DAG (same as `miva pipeline compile`)."""

import sys

from miva.cli import main

if __name__ == "__main__":
    preset = sys.argv[1] if len(sys.argv) > 1 else "tiny-cpu"
    output = sys.argv[2] if len(sys.argv) > 2 else "pipeline.yaml"
    sys.exit(main(["pipeline", "compile", "-c", preset, "--output", output]))
