"""Kubeflow Pipelines plumbing around the `miva` stages.

The DAG itself lives in the repository's `pipelines/` and the components in `components/`;
this package holds the library code they share, importable without KFP:

- `stage`: what a component body calls: resolve preset + overrides, run one `miva` stage
  with the KFP run id and task name in its environment, describe its outputs.
- `images`: which image each stage runs on and how image references are spelled.
- `trainjob`: render, submit and follow a Kubeflow Trainer `TrainJob` (multi-node GRPO).
- `submit`: compile the DAG and submit it through `kfp.Client`.
- `local`: run the whole DAG through `kfp.local` and print a summary.
"""
