"""Multi-agent synthesis of fine-grained multi-image QA (`miva synthesize`).

The agents, one module each: `scene` (scene designer), `render` (Pillow drawing),
`questions` (question writer), `solver` (answers and evidence from the scene graph),
`verifier` (rejects ambiguous/unanswerable items, balances answers), `paraphrase`
(optional LLM rewrite), `difficulty` (pass-rate filter for RL prompts), and `generate`
(orchestration over worker processes), `build.run_synth` (the configured source -> a
dataset folder). `miva.data.coco` builds the same task families from COCO-format
detection annotations.
"""

from miva.data.synth.generate import sample_seed, synthesize

__all__ = ["sample_seed", "synthesize"]
