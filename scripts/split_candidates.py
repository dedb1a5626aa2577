from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, structure_uid, write_structures  # noqa: E402

folder = Path(snakemake.output[0])
folder.mkdir(parents=True, exist_ok=True)
for atoms in read_structures(snakemake.input[0]):
    uid = atoms.info.setdefault("uid", structure_uid(atoms))
    write_structures(folder / f"{uid}.extxyz", atoms)
    log.info("candidate %s (%s, %d atoms)", uid, atoms.info.get("origin"), len(atoms))
