"""The Kubeflow Pipelines layer: the DAG and everything that builds, compiles, runs and
submits it. It sits on top of `miva.stages`; nothing below imports it.

- `components/`: one KFP component per stage; each body calls one `miva.stages` function.
- `artifacts`: what a component body calls around its stage (config, outcome, metadata).
- `dag`: `build_pipeline(cfg, preset, overrides)`, the `@dsl.pipeline` function.
- `submit`: compile the DAG to YAML and submit it through `kfp.Client`
  (`python -m miva.pipeline PRESET OUTPUT` compiles).
- `local`: run the whole DAG through `kfp.local`, quietly (`runlog`), and summarise it
  (`summary`).
- `images`: which image each stage runs on; `secrets`: Kubernetes secrets -> env vars.
- `trainjob`: render, submit and follow a Kubeflow Trainer `TrainJob` (multi-node GRPO).
"""
