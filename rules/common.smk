# Wiring helpers shared by every rule: paths of a generation and the input functions
# that walk the generation loop through its checkpoints.

import json


wildcard_constraints:
    gen=r"\d{3}",
    uid=r"[0-9a-f]{16}",
    run=r"[A-Za-z0-9_.\-]+",


#: The provenance database every generation is projected into (rules/database.smk).
DATABASE_PATH = "results/dataset.db"


def record_database_update(params, log_file, receipt):
    """Project one generation's labels or fit into the database; log and write a receipt."""
    from mlip_autopipe.data import write_text_atomic
    from mlip_autopipe.provenance import update_database

    labels = params.part == "labels"
    summary = update_database(
        params.database, ".", [params.generation], rows=labels, fits=not labels
    )
    with open(log_file, "w") as log:
        log.write(f"{params.database}: {summary}\n")
    write_text_atomic(receipt, json.dumps(summary, indent=2) + "\n")


def canonical(section):
    """A config section with keys sorted at every level.

    Snakemake compares params by their text, so without this, reordering keys in a config
    file (or a default filled in at another position) would rerun jobs, DFT included.
    """
    return json.loads(json.dumps(section, sort_keys=True))


def gen_dir(generation):
    """results/gen_NNN of a generation given as int or zero-padded string."""
    return f"results/gen_{int(generation):03d}"


def get_explore_env():
    """The explore rule's conda env: LAMMPS (conda-forge, with ML-PACE) or pyace for `ase`."""
    if config["explore"]["engine"] == "lammps":
        return "../envs/lammps.yaml"
    return "../envs/pacemaker.yaml"


def get_explore_runs():
    """The exploration runs of every generation (the policy's plan: known from the config)."""
    from mlip_autopipe.explore.policy import run_names

    return run_names(config["elements"], config["structures"], config["explore"])


def get_explore_settings():
    """The explore section, plus whether every check's frame is kept (random selection)."""
    return canonical(dict(config["explore"], keep_every_check=config["select"]["method"] == "random"))


def get_explore_run_inputs(wildcards):
    """A run's potential and pool, and from generation 1 on the same run's last frame and
    summary of the generation before (the run continues from there) and that generation's
    run summaries (the melting point its bulk run found)."""
    generation = int(wildcards.gen)
    inputs = {
        "pool": "results/structures/pool.extxyz",
        "yaml": f"{gen_dir(generation)}/fit/potential.yaml",
        "asi": f"{gen_dir(generation)}/fit/potential.asi",
    }
    if generation > 0:
        previous = f"{gen_dir(generation - 1)}/explore/runs/{wildcards.run}"
        inputs.update(
            last=f"{previous}/last.extxyz",
            previous=f"{previous}/summary.json",
            previous_runs=f"{gen_dir(generation - 1)}/explore/runs.json",
        )
    return inputs


def get_candidate_source(wildcards):
    """Generation 0 starts from the initial pick; generation g from g-1's embedded selection."""
    generation = int(wildcards.gen)
    if generation == 0:
        return "results/structures/initial.extxyz"
    return f"{gen_dir(generation - 1)}/embedded.extxyz"


def get_label_candidates(wildcards):
    """What the oracle labels: the surrogate-screened candidates when pre-screening is on."""
    if config["surrogate"]["prescreen"]["enabled"]:
        return f"{gen_dir(wildcards.gen)}/screened.extxyz"
    return f"{gen_dir(wildcards.gen)}/candidates.extxyz"


def get_surrogate_settings():
    """The surrogate's kind and model settings (what changes its labels)."""
    surrogate = config["surrogate"]
    kind = surrogate["kind"]
    return canonical({"kind": kind, kind: surrogate[kind]})


def get_finetune_settings():
    """What changes the fine-tuned surrogate: its kind, base model and fine-tuning settings."""
    surrogate = config["surrogate"]
    kind = surrogate["kind"]
    return canonical({"kind": kind, kind: surrogate[kind], "finetuning": surrogate["finetuning"]})


def get_finetuned_committee_outputs():
    """The fine-tuned MACE committee's other members (none for one model)."""
    size = config["surrogate"]["finetuning"]["committee"]
    return [f"results/gen_{{gen}}/surrogate/committee_{index}.pt" for index in range(1, size)]


def get_finetuned_surrogate(wildcards):
    """This generation's fine-tuned surrogate model (model.pt first, then any committee members)
    when surrogate.distillation.finetune is on."""
    if not config["surrogate"]["distillation"]["finetune"]:
        return []
    members = [f.replace("{gen}", f"{int(wildcards.gen):03d}") for f in get_finetuned_committee_outputs()]
    return [f"{gen_dir(wildcards.gen)}/surrogate/model.pt", *members]


def get_surrogate_pool_sources(wildcards):
    """What the surrogate labels for distillation: the generation-0 pool and, optionally,
    the exploration frames of the generations before this one."""
    sources = ["results/structures/pool.extxyz"]
    if config["surrogate"]["distillation"]["exploration_frames"]:
        sources += [f"{gen_dir(g)}/explore/frames.extxyz" for g in range(int(wildcards.gen))]
    return sources


def get_surrogate_md_frames(wildcards):
    """This generation's surrogate MD frames (pseudo-labelled) when surrogate.distillation.md is on."""
    if not config["surrogate"]["distillation"]["md"]["enabled"]:
        return []
    return [f"{gen_dir(wildcards.gen)}/surrogate_md/frames.extxyz"]


def get_surrogate_uncertain(wildcards):
    """The surrogate MD frames routed to the oracle (candidates of this generation's selection)."""
    if not config["surrogate"]["distillation"]["md"]["enabled"]:
        return []
    return [f"{gen_dir(wildcards.gen)}/surrogate_md/uncertain.extxyz"]


def get_distillation_inputs(wildcards):
    """The surrogate-labelled pool of this generation when distillation is on."""
    if not config["surrogate"]["distillation"]["enabled"]:
        return []
    return [f"{gen_dir(wildcards.gen)}/surrogate_pool.extxyz"]


def get_label_files(wildcards):
    """One label file per candidate uid, known once the split checkpoint has run."""
    folder = checkpoints.split_candidates.get(gen=wildcards.gen).output[0]
    uids = glob_wildcards(os.path.join(folder, "{uid}.extxyz")).uid
    return expand(f"{gen_dir(wildcards.gen)}/label/{{uid}}.extxyz", uid=sorted(uids))


def get_training_sets(wildcards):
    """The cumulative training set of generation g: labelled data of generations 0..g."""
    return [f"{gen_dir(g)}/labelled.extxyz" for g in range(int(wildcards.gen) + 1)]


def get_warm_start_inputs(wildcards):
    """Generation g-1's potential and metrics when generation g starts warm (nonlinear mode)."""
    generation = int(wildcards.gen)
    fit = config["fit"]
    if generation == 0 or fit["mode"] != "nonlinear" or not fit["warm_start"]:
        return []
    previous = gen_dir(generation - 1)
    return [f"{previous}/fit/potential.yaml", f"{previous}/fit/metrics.json"]


def get_final_generation():
    """Walk the decide checkpoints until one says stop; returns that generation."""
    for generation in range(config["loop"]["max_generations"]):
        decision_file = checkpoints.decide.get(gen=f"{generation:03d}").output.decision
        with open(decision_file) as handle:
            if not json.load(handle)["continue"]:
                return generation
    return config["loop"]["max_generations"] - 1


def get_all_training_sets(wildcards):
    """Every generation's labelled data, up to the stopping generation (the production fit's)."""
    return [f"{gen_dir(g)}/labelled.extxyz" for g in range(get_final_generation() + 1)]


def get_production_fit_settings():
    """The production fit's settings: the fit section with production.fit on top."""
    from mlip_autopipe.production import production_fit_settings

    return canonical(production_fit_settings(config["fit"], config["production"]["fit"]))


def get_production_ladder():
    """production.ladder when enabled (the production fit grows its basis step by step), else None."""
    ladder = config["production"]["ladder"]
    return canonical(ladder) if ladder["enabled"] else None


def get_production_threads():
    """Threads of the production fit: fit.threads when nonlinear, one for a linear fit."""
    nonlinear = get_production_fit_settings()["mode"] == "nonlinear"
    return config["fit"]["threads"] if nonlinear else 1


def get_final_potential(wildcards):
    """The potential results/final ships: the production fit, or with production.enabled
    false the stopping generation's loop fit."""
    if config["production"]["enabled"]:
        folder = "results/production"
    else:
        folder = f"{gen_dir(get_final_generation())}/fit"
    return {key: f"{folder}/potential.{key}" for key in ("yaml", "yace", "asi")} | {
        "metrics": f"{folder}/metrics.json"
    }


def get_validation_potential(wildcards):
    """The potential validation checks: the one results/final ships (.yaml and active set)."""
    potential = get_final_potential(wildcards)
    return {"yaml": potential["yaml"], "asi": potential["asi"]}


def get_final_inputs(wildcards):
    """The shipped potential, the stopping generation's loop fit metrics, every generation's
    decision and ledger, the production fit's per-category metrics and the validation."""
    final = get_final_generation()
    inputs = get_final_potential(wildcards) | {
        "loop_metrics": f"{gen_dir(final)}/fit/metrics.json",
        "decisions": [f"{gen_dir(g)}/decision.json" for g in range(final + 1)],
        "ledgers": [f"{gen_dir(g)}/ledger.json" for g in range(final + 1)],
    }
    if config["production"]["enabled"]:
        inputs["categories"] = "results/production/categories.json"
    if config["validation"]["enabled"]:
        inputs["validation"] = "results/validation/validation.json"
    return inputs


def get_oracle_result_settings():
    """The oracle settings that change labels; execution keys (pw.x command, cores,
    walltime) are left out, so editing them reruns no label job."""
    from mlip_autopipe.oracles import result_config

    return canonical(result_config(config["oracle"]))


def get_label_cores():
    """Cores of one label job: oracle.qe.cores for pw.x, one for EMT."""
    if config["oracle"]["kind"] == "qe":
        return config["oracle"]["qe"]["cores"]
    return 1


def get_label_runtime_minutes():
    """Slurm runtime of one label job: every rung of the recovery ladder at full walltime."""
    if config["oracle"]["kind"] == "qe":
        qe = config["oracle"]["qe"]
        return int(qe["walltime_s"] * (1 + len(qe["recovery"])) / 60) + 5
    return 10


def get_report_inputs(wildcards):
    """Per-generation outputs of every generation up to the final one."""
    generations = range(get_final_generation() + 1)
    return {
        "metrics": [f"{gen_dir(g)}/fit/metrics.json" for g in generations],
        "labelled": [f"{gen_dir(g)}/labelled.extxyz" for g in generations],
        "ledgers": [f"{gen_dir(g)}/ledger.json" for g in generations],
        "frames": [f"{gen_dir(g)}/explore/frames.extxyz" for g in generations],
        "runs": [f"{gen_dir(g)}/explore/runs.json" for g in generations],
        "decisions": [f"{gen_dir(g)}/decision.json" for g in generations],
        "potential": "results/final/potential.yaml",
    }


def get_validation_targets():
    """The outputs of the validation of the final potential, when validation.enabled."""
    if not config["validation"]["enabled"]:
        return []
    return rules.validate.output
