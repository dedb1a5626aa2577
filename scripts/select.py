from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402
from mlip_autopipe.select import select_by_gamma  # noqa: E402

frames = read_structures(snakemake.input.frames)
selected = select_by_gamma(frames, snakemake.params.cap, snakemake.params.gamma_hi)
log.info("selected %d of %d extrapolative frames", len(selected), len(frames))
write_structures(snakemake.output[0], selected)
