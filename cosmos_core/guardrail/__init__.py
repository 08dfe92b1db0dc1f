"""The guardrail (text and video safety checks) and the pipeline wrapper that applies it with the
prompt refiner. Reference: cosmos_predict2/auxiliary/guardrail/ (see README "Guardrail").

    from cosmos_core.guardrail import Guardrail, GuardrailBlocked, guard_pipeline
    rail = Guardrail.load(Path("checkpoints"), device="cuda")   # logs which parts run
    rail.check_prompt("a robot arm picks up a cup")              # raises GuardrailBlocked if refused
"""

from cosmos_core.guardrail.blocklist import Blocklist
from cosmos_core.guardrail.guarded import GuardedPipeline, guard_from_args, guard_pipeline, load_safety
from cosmos_core.guardrail.lemmatize import lemma_candidates, lemmatize
from cosmos_core.guardrail.runner import Guardrail
from cosmos_core.guardrail.verdict import GuardrailBlocked, Verdict

__all__ = [
    "Blocklist",
    "GuardedPipeline",
    "Guardrail",
    "GuardrailBlocked",
    "Verdict",
    "guard_from_args",
    "guard_pipeline",
    "lemma_candidates",
    "lemmatize",
    "load_safety",
]
