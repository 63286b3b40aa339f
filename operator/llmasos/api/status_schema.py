"""Schemas of the operator-written accounting objects in LLMJob status: `status.carbon`, `status.power` and
`status.progress`.

Documented field by field so `kubectl explain` and docs/reference/llmjob.md say what each number means; both keep
`x-kubernetes-preserve-unknown-fields` for the bookkeeping the operator keeps beside them (the energy ledger) and so
that an older CRD never prunes a field a newer operator writes. Computations: docs/observability.md.
"""

from __future__ import annotations

from llmasos.api.openapi import Schema, array, boolean, integer, number, obj, string


def carbon_status_schema() -> Schema:
    return obj(
        "Energy and emissions accounting, from the node agents' metered GPU energy and the zone's grid intensity "
        "(written at most once a minute while running, and once more when final).",
        {
            "energyKWh": number("IT energy: GPU energy the node agents metered for the job's pods (kWh)."),
            "facilityEnergyKWh": number("IT energy x PUE, piece by piece (kWh)."),
            "gCO2e": number("Location-based emissions: sum over run intervals of energy x PUE x the zone's "
                            "intensity in that interval (grams CO2e)."),
            "averageIntensity": number("gCO2e / facilityEnergyKWh: the grid intensity the job met (g/kWh)."),
            "runNowGCO2e": number("Emissions of the same energy profile had the job run from submission, on the "
                                  "same intensity series (grams)."),
            "savedGCO2e": number("runNowGCO2e - gCO2e: saved by carbon-aware timing (negative when waiting cost "
                                 "carbon)."),
            "savedPercent": number("savedGCO2e / runNowGCO2e x 100."),
            "poolChoiceSavedGCO2e": number("Saved by choosing the pool (planner's estimate against the first "
                                           "listed pool, scaled to the actual emissions)."),
            "powerCapSavedKWh": number("Estimated IT energy power caps saved against the uncapped profile: "
                                       "energyOptimal from its measured slowdown, limit and fraction from the "
                                       "measured power-limit curves of the GPU product (kWh)."),
            "tokens": number("Tokens the job's workers processed (llmasos_worker_tokens_total, read by the node "
                             "agents; the largest count among the job's pods).", minimum=0),
            "joulesPerToken": number("energyKWh x 3.6e6 / tokens: IT energy per token (J).", minimum=0),
            "method": string("Accounting method: location-based.", max_length=32),
            "emissionFactorType": string("lifecycle or direct, as the intensity source reports it.",
                                         enum=["lifecycle", "direct"]),
            "source": string("Intensity source: electricitymaps, trace or static.", max_length=32),
            "isEstimated": boolean("True when the source's values are estimates or energy fell in a data gap."),
            "offset": obj("Carbon offset of gCO2e.", {
                "tonnes": number("Tonnes CO2e.", minimum=0),
                "cost": number("tonnes x the configured price per tonne.", minimum=0),
                "currency": string("Currency of cost.", max_length=8),
            }),
            "display": obj("energyKWh, gCO2e and savedGCO2e scaled for people, with their unit (Wh/kWh/MWh, "
                           "g/kg/t CO2e): what kubectl get shows.", {
                "energy": string("IT energy, e.g. 1.2 kWh.", max_length=32),
                "emissions": string("Emissions, e.g. 340 g or 1.0 t (CO2e).", max_length=32),
                "saved": string("Saved by carbon-aware timing, e.g. 12 g (negative: waiting cost carbon).",
                                max_length=32),
            }),
            "updatedAt": string("When this object was last written.", fmt="date-time"),
            "ledger": obj("Energy intervals and last readings per pod (the operator's bookkeeping).",
                          preserve_unknown=True),
        },
        preserve_unknown=True,
    )


def progress_status_schema() -> Schema:
    return obj(
        "How far along the job is, from its workers' counts (the built-in worker's train and finetune tasks: "
        "optimizer steps, counted across resumes from a checkpoint; inference: the job's new tokens; compress: the "
        "steps it trains, pre-training and distillation; absent for a command of one's own).",
        {
            "step": integer("Steps done (the largest count any worker pod reported; for inference rerun after "
                            "spec.suspend, that of its running pods once they report): optimizer steps, or new "
                            "tokens for inference.", minimum=0),
            "plannedSteps": integer("Where the run ends: taskConfig steps, prompts x max_new_tokens for inference, "
                                    "or the pre-training and distillation steps for compress.", minimum=1),
            "percent": integer("step / plannedSteps x 100, rounded down.", minimum=0, maximum=100),
            "display": string("step/plannedSteps (percent%), for kubectl.", max_length=64),
            "remainingSeconds": integer("Run time the workers still needed to reach plannedSteps at the pace of their "
                                        "last 20 steps (or last 30 s, when those took less), at their last reading "
                                        "(absent before it is measured and once done).", minimum=0),
            "estimatedEnd": string("That reading's time plus remainingSeconds: when the job ends if it keeps its "
                                   "pace and runs on (an interruptible job's carbon pauses come on top).",
                                   fmt="date-time"),
        },
    )


def power_status_schema() -> Schema:
    pod = obj(
        "One worker pod as its node agent last reported it.",
        {
            "pod": string("Pod name.", max_length=253),
            "node": string("Node name.", max_length=253),
            "gpus": array("UUIDs of the pod's GPUs.", string("GPU UUID.", max_length=128), max_items=64),
            "policy": string("Power policy applied.", max_length=32),
            "limitWatts": number("Power limit applied to the pod's GPUs (kept after the pod ended) (W)."),
            "defaultWatts": number("NVML default power limit of those GPUs: the uncapped reference (W)."),
            "slowdown": number("energyOptimal: measured slowdown of the chosen limit against the default."),
            "state": string("Agent state of the pod (Capped, Default, Settled, Following, Ended, ...).",
                            max_length=32),
            "energyJoules": number("GPU energy metered for the pod (J).", minimum=0),
            "tokens": number("The worker's token counter at the agent's last read.", minimum=0),
            "step": number("The worker's optimizer steps done at the agent's last read (llmasos_worker_step).",
                           minimum=0),
            "plannedSteps": number("The step the worker's run ends at (llmasos_worker_planned_steps); absent for "
                                   "tasks without a planned step count.", minimum=0),
            "remainingSeconds": number("Run time the worker still needed to reach plannedSteps at the pace of its "
                                       "last 20 steps or 30 s (llmasos_worker_remaining_seconds), at readAt.",
                                       minimum=0),
            "readAt": string("Time of the report this entry comes from.", max_length=64),
        },
        preserve_unknown=True,
    )
    return obj(
        "Power limits and metered energy per worker pod, from the node agents' reports.",
        {
            "pods": array("Worker pods (every pod of every attempt, so no upper bound).", pod),
            "energyJoules": number("Sum of the pods' energy (J).", minimum=0),
            "reportedAt": string("Newest report time.", max_length=64),
        },
        preserve_unknown=True,
    )
