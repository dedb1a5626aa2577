from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, structure_uid, write_structures  # noqa: E402
from mlip_autopipe.distillation import pick_pool  # noqa: E402
from mlip_autopipe.errors import LabellingError  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402

surrogate = oracle_from_config(snakemake.config, section="surrogate", cores=snakemake.threads)
structures = [atoms for path in snakemake.input for atoms in read_structures(path)]
for atoms in structures:
    atoms.info.setdefault("uid", structure_uid(atoms))
pool = pick_pool(structures, snakemake.params.max_structures, snakemake.params.seed)
labelled = []
for atoms in pool:
    try:
        labelled.append(surrogate.label(atoms))
    except LabellingError as error:
        log.warning("%s: not labelled by %s (%s)", atoms.info["uid"], surrogate.name, error)
log.info("%s labelled %d of %d pool structures", surrogate.name, len(labelled), len(structures))
write_structures(snakemake.output[0], labelled)
