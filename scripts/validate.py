import json
import warnings
from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe import validation  # noqa: E402
from mlip_autopipe import validation_plots as plots  # noqa: E402
from mlip_autopipe.data import atomic_output, read_structures, write_text_atomic  # noqa: E402
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
    summary = validation.validate_potential(
        materials,
        snakemake.input.yaml,
        snakemake.input.asi,
        oracle,
        settings,
        snakemake.params.explore,
        snakemake.params.seed,
        log=log.info,
    )
write_text_atomic(snakemake.output.json, json.dumps(summary, indent=1) + "\n")
figures = {
    "eos": plots.plot_equation_of_state(summary["materials"]),
    "elastic": plots.plot_elastic_constants(summary["materials"]),
    "phonons": plots.plot_phonons(summary["phonons"]),
    "md": plots.plot_md_stability(summary["md"]),
}
for name, figure in figures.items():
    with atomic_output(snakemake.output[name]) as temporary:
        figure.savefig(temporary, dpi=120)
