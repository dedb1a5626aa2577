import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.prescreen import screen_candidates  # noqa: E402

surrogate = oracle_from_config(snakemake.config, section="surrogate", cores=snakemake.threads)
candidates = read_structures(snakemake.input[0])
kept, ledger = screen_candidates(candidates, surrogate, snakemake.params.screen)
for row in ledger:
    log.info("%s: %s (%s)", row["uid"], row["status"], row["reason"])
log.info("pre-screen by %s: %d of %d candidates kept", surrogate.name, len(kept), len(candidates))
write_structures(snakemake.output.screened, kept)
write_text_atomic(snakemake.output.ledger, json.dumps(ledger, indent=2) + "\n")
