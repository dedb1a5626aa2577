from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402
from mlip_autopipe.select import grade_frames, select_environments  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

frames = read_structures(snakemake.input.frames)
# surrogate MD frames where the surrogate committee disagrees: candidates next to the MD's own
uncertain = [atoms for path in snakemake.input.uncertain for atoms in read_structures(path)]
if uncertain:
    frames += grade_frames(uncertain, snakemake.input.yaml, snakemake.input.asi)
    log.info("%d surrogate MD frames routed to the oracle join the candidates", len(uncertain))
with tool_time(log, "pacemaker"):  # gamma and MaxVol through pyace
    selected, method = select_environments(
        frames,
        snakemake.params.select,
        potential_yaml=snakemake.input.yaml,
        active_set=snakemake.input.asi,
        gamma_hi=snakemake.params.gamma_hi,
        whole_frame_atoms=snakemake.params.whole_frame_atoms,
        seed=snakemake.params.seed,
    )
log.info("%s: selected %d environments from %d extrapolative frames", method, len(selected), len(frames))
for atoms in selected:
    log.info(
        "frame %s (%s) core atom %d gamma %.3f",
        atoms.info["uid"],
        atoms.info.get("scenario", "bulk"),
        atoms.info["core_atom"],
        atoms.info["core_gamma"],
    )
write_structures(snakemake.output[0], selected)
