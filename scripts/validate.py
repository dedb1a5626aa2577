import json
import warnings
from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe import validation  # noqa: E402
from mlip_autopipe import validation_plots as plots  # noqa: E402
from mlip_autopipe.data import read_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.explore import load_calculator  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

# phonopy warns that "auto" (which we ask for) differs from its v3 default
warnings.filterwarnings("ignore", message="primitive_matrix defaulted")

settings = snakemake.params.validation
# the same oracle as labelling (elements, pseudopotentials, cores, `{mpi}`); params.oracle holds
# only what changes results, so editing the pw.x command reruns no validation
oracle = oracle_from_config(
    snakemake.config,
    cores=snakemake.threads,
    mpi=snakemake.resources.get("mpi"),
    work_dir=Path(snakemake.log[0]).with_suffix(".pw"),
)
materials = validation.validation_materials(
    snakemake.params.elements,
    snakemake.params.structures,
    settings,
    read_structures(snakemake.input.pool),
    snakemake.params.seed,
)
# oracle and potential calls interleave here: counted together as validation tool time
with tool_time(log, "validation"):
    results = validation.validate(
        materials,
        validation.potential_labeller(snakemake.input.yaml),
        validation.oracle_labeller(oracle),
        settings,
        phonon_oracle=validation.phonons_with_oracle(settings["phonons"], snakemake.config["oracle"]["kind"]),
        log=log.info,
    )
    md = None
    if settings["md"]["enabled"]:
        explore = snakemake.params.explore
        start_material = validation.md_material(materials)
        temperature = settings["md"]["temperature_factor"] * max(explore["temperatures"])
        log.info("MD stability run of %s at %.0f K", start_material.name, temperature)
        md = validation.md_stability(
            start_material.atoms,
            load_calculator(snakemake.input.yaml, snakemake.input.asi),
            temperature=temperature,
            steps=settings["md"]["steps"],
            timestep_fs=explore["timestep_fs"],
            friction=explore["friction"],
            check_interval=settings["md"]["check_interval"],
            min_distance=settings["md"]["min_distance"],
            seed=snakemake.params.seed,
        )
        md["material"] = start_material.name
        log.info("MD: %s", md["reason"])
summary = {
    "oracle": oracle.name,
    "oracle_settings_hash": oracle.settings_hash(),
    "units": {"a0": "A", "v0": "A^3/atom", "B0": "GPa", "C": "GPa", "frequency": "THz", "energy": "eV/atom"},
    **results,
    "md": md,
}
for name, material in results["materials"].items():
    log.info(
        "%s: %s", name, {k: round(v["relative_error"], 4) for k, v in material.get("comparison", {}).items()}
    )
write_text_atomic(snakemake.output.json, json.dumps(summary, indent=1) + "\n")
figures = {
    "eos": plots.plot_equation_of_state(results["materials"]),
    "elastic": plots.plot_elastic_constants(results["materials"]),
    "phonons": plots.plot_phonons(results["phonons"]),
    "md": plots.plot_md_stability(md),
}
for name, figure in figures.items():
    figure.savefig(snakemake.output[name], dpi=120)
