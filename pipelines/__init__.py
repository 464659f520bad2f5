"""The MIVA DAG (`dag.py`); `python -m pipelines` compiles it. Runs go through `miva pipeline`."""
