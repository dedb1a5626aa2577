// SPDX-License-Identifier: GPL-2.0-or-later
// MLIP-AutoPipe: LAMMPS pair styles `pace` and `pace/extrapolation` over the ACE evaluator.
//
// Input syntax follows LAMMPS's ML-PACE package, so one deck runs here and on a LAMMPS
// built with ML-PACE:
//   pair_style pace [recursive|product] [chunksize N]
//   pair_coeff * * potential.yace El1 El2 ...          (or a B-basis potential.yaml)
//   pair_style pace/extrapolation
//   pair_coeff * * potential.yaml potential.asi El1 El2 ...
//   fix gamma all pair 10 pace/extrapolation gamma 1   (per-atom extrapolation grade)
// One element per LAMMPS atom type; NULL leaves a type to other styles of a hybrid.

#ifndef MLIP_AUTOPIPE_PAIR_ACE_H
#define MLIP_AUTOPIPE_PAIR_ACE_H

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

class ACEBBasisSet;
class ACEBEvaluator;
class ACECTildeBasisSet;
class ACERecursiveEvaluator;
class ACEEvaluator;

namespace MlipAutopipe {

class PairACE : public LAMMPS_NS::Pair {
 public:
  PairACE(LAMMPS_NS::LAMMPS *lmp, bool extrapolation);
  ~PairACE() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;
  void *extract(const char *name, int &dim) override;
  void *extract_peratom(const char *name, int &ncol) override;
  double memory_usage() override;

 private:
  const bool extrapolation;      // pace/extrapolation: B-basis + active set, gamma on request
  bool recursive = true;         // recursive (default) or product evaluator for energy/forces
  int gamma_flag = 0;            // set by `fix pair ... gamma 1` on the steps it needs gamma
  int gamma_capacity = 0;        // allocated length of gamma_per_atom
  double *gamma_per_atom = nullptr;
  double cutoff_max = 0.0;
  std::vector<int> type_to_species;  // LAMMPS type (1..ntypes) -> ACE species, -1 for NULL
  bool has_unmapped_types = false;
  std::vector<int> neighbours;       // jlist without atoms of NULL types

  std::unique_ptr<ACECTildeBasisSet> ctilde_basis;
  std::unique_ptr<ACERecursiveEvaluator> fast_evaluator;
  std::unique_ptr<ACEBBasisSet> b_basis;
  std::unique_ptr<ACEBEvaluator> gamma_evaluator;

  void allocate();
  void load_potential(const std::string &potential, const std::string &active_set);
  void map_types(int narg, char **elements);
  void grow_gamma();
  void accumulate(ACEEvaluator &evaluator, int i, int jnum, const int *jlist, int eflag);
};

}    // namespace MlipAutopipe

#endif
