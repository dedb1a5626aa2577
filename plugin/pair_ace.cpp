// SPDX-License-Identifier: GPL-2.0-or-later
// MLIP-AutoPipe: LAMMPS pair styles `pace` and `pace/extrapolation` over the ACE evaluator.
// Written for this project from the evaluator's public API (see pair_ace.h for the syntax).

#include "pair_ace.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"

#include "ace-evaluator/ace_c_basis.h"
#include "ace-evaluator/ace_recursive.h"
#include "ace/ace_b_basis.h"
#include "ace/ace_b_evaluator.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>

namespace MlipAutopipe {

namespace {

bool ends_with(const std::string &text, const std::string &suffix)
{
  return text.size() >= suffix.size() &&
      text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}    // namespace

PairACE::PairACE(LAMMPS_NS::LAMMPS *lmp, bool extrapolation) :
    LAMMPS_NS::Pair(lmp), extrapolation(extrapolation)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
}

PairACE::~PairACE()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
  memory->destroy(gamma_per_atom);
}

void PairACE::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

void PairACE::settings(int narg, char **arg)
{
  for (int iarg = 0; iarg < narg; ++iarg) {
    const std::string word = arg[iarg];
    if (word == "recursive") {
      recursive = true;
    } else if (word == "product") {
      recursive = false;
    } else if (word == "chunksize") {
      // accepted for ML-PACE compatibility: it sizes KOKKOS batches, which this style lacks
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style pace: chunksize needs a value");
      ++iarg;
    } else {
      error->all(FLERR, "pair_style pace: unknown keyword " + word);
    }
  }
}

void PairACE::load_potential(const std::string &potential, const std::string &active_set)
{
  try {
    if (extrapolation || ends_with(potential, ".yaml")) {
      b_basis = std::make_unique<ACEBBasisSet>();
      b_basis->load(potential);
      ctilde_basis = std::make_unique<ACECTildeBasisSet>(b_basis->to_ACECTildeBasisSet());
    } else {
      ctilde_basis = std::make_unique<ACECTildeBasisSet>();
      if (ends_with(potential, ".yace"))
        ctilde_basis->load_yaml(potential);
      else
        ctilde_basis->load(potential);
    }
    fast_evaluator = std::make_unique<ACERecursiveEvaluator>();
    fast_evaluator->set_recursive(recursive);
    fast_evaluator->set_basis(*ctilde_basis, 1);  // heuristic 1: artificial 2-correlations in the DAG
    if (extrapolation) {
      gamma_evaluator = std::make_unique<ACEBEvaluator>();
      gamma_evaluator->set_basis(*b_basis);
      gamma_evaluator->load_active_set(active_set);
    }
  } catch (std::exception &exception) {
    error->all(FLERR, "pair_style " + std::string(extrapolation ? "pace/extrapolation" : "pace") +
                   ": cannot load " + potential + (active_set.empty() ? "" : " / " + active_set) +
                   ": " + exception.what());
  }
  cutoff_max = ctilde_basis->cutoffmax;
}

void PairACE::map_types(int ntypes, char **elements)
{
  // species index of each element name of the potential
  std::map<std::string, int> species_of;
  for (int species = 0; species < ctilde_basis->nelements; ++species)
    species_of[ctilde_basis->elements_name[species]] = species;
  type_to_species.assign(ntypes + 1, -1);
  has_unmapped_types = false;
  for (int type = 1; type <= ntypes; ++type) {
    const std::string element = elements[type - 1];
    if (element == "NULL") {
      has_unmapped_types = true;
      continue;
    }
    const auto found = species_of.find(element);
    if (found == species_of.end()) {
      std::string known;
      for (const auto &entry : species_of) known += " " + entry.first;
      error->all(FLERR, "pair_coeff: element " + element + " is not in the potential (it has:" +
                     known + ")");
    }
    type_to_species[type] = found->second;
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j)
      setflag[i][j] = (type_to_species[i] >= 0 && type_to_species[j] >= 0) ? 1 : 0;

  // the evaluators look species up by LAMMPS type; NULL types never reach them (filtered)
  std::vector<ACEEvaluator *> evaluators = {fast_evaluator.get()};
  if (gamma_evaluator) evaluators.push_back(gamma_evaluator.get());
  for (ACEEvaluator *evaluator : evaluators) {
    evaluator->element_type_mapping.init(ntypes + 1, "element_type_mapping");
    for (int type = 0; type <= ntypes; ++type)
      evaluator->element_type_mapping(type) = std::max(type_to_species[type], 0);
  }
}

void PairACE::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  const int nfiles = extrapolation ? 2 : 1;
  if (narg != 2 + nfiles + ntypes)
    error->all(FLERR,
               std::string("pair_coeff: expected * * ") +
                   (extrapolation ? "potential.yaml potential.asi" : "potential.yace") +
                   " and one element (or NULL) for each of the " + std::to_string(ntypes) +
                   " atom types");
  if (std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff: this pair style takes * * as its first two arguments");
  load_potential(arg[2], extrapolation ? arg[3] : "");
  map_types(ntypes, arg + 2 + nfiles);
}

void PairACE::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style pace requires newton pair on");
  neighbor->add_request(this, LAMMPS_NS::NeighConst::REQ_FULL);
}

double PairACE::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "pair_style pace: all pair coeffs are not set");
  return cutoff_max;
}

void PairACE::grow_gamma()
{
  if (atom->nmax <= gamma_capacity) return;
  memory->destroy(gamma_per_atom);
  gamma_capacity = atom->nmax;
  memory->create(gamma_per_atom, gamma_capacity, "pair:gamma");
}

void PairACE::accumulate(ACEEvaluator &evaluator, int i, int jnum, const int *jlist, int eflag)
{
  double **x = atom->x;
  double **f = atom->f;
  const int nlocal = atom->nlocal;
  for (int jj = 0; jj < jnum; ++jj) {
    const int j = jlist[jj];
    // the evaluator gives the force on i from neighbour j; j feels the opposite (newton on)
    const double fx = evaluator.neighbours_forces(jj, 0);
    const double fy = evaluator.neighbours_forces(jj, 1);
    const double fz = evaluator.neighbours_forces(jj, 2);
    f[i][0] += fx;
    f[i][1] += fy;
    f[i][2] += fz;
    f[j][0] -= fx;
    f[j][1] -= fy;
    f[j][2] -= fz;
    // pairwise virial (global without f.r, and per-atom); energies are tallied per atom below
    if (vflag_either)
      ev_tally_xyz(i, j, nlocal, 1, 0.0, 0.0, fx, fy, fz, x[i][0] - x[j][0], x[i][1] - x[j][1],
                   x[i][2] - x[j][2]);
  }
  if (eflag) {
    if (eflag_global) eng_vdwl += evaluator.e_atom;
    if (eflag_atom) eatom[i] += evaluator.e_atom;
  }
}

void PairACE::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  double **x = atom->x;
  int *type = atom->type;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;

  const bool want_gamma = extrapolation && gamma_flag;
  if (want_gamma) {
    grow_gamma();
    std::fill(gamma_per_atom, gamma_per_atom + atom->nlocal, 0.0);
    gamma_evaluator->compute_projections = true;
  }
  ACEEvaluator &evaluator = want_gamma ? static_cast<ACEEvaluator &>(*gamma_evaluator)
                                       : static_cast<ACEEvaluator &>(*fast_evaluator);

  int max_jnum = 0;
  for (int ii = 0; ii < inum; ++ii) max_jnum = std::max(max_jnum, numneigh[ilist[ii]]);
  evaluator.resize_neighbours_cache(max_jnum);

  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    if (type_to_species[type[i]] < 0) continue;
    int jnum = numneigh[i];
    const int *jlist = firstneigh[i];
    if (has_unmapped_types) {
      neighbours.clear();
      for (int jj = 0; jj < jnum; ++jj) {
        const int j = jlist[jj] & NEIGHMASK;
        if (type_to_species[type[j]] >= 0) neighbours.push_back(j);
      }
      jnum = static_cast<int>(neighbours.size());
      jlist = neighbours.data();
    }
    try {
      evaluator.compute_atom(i, x, type, jnum, jlist);
    } catch (std::exception &exception) {
      error->one(FLERR, std::string("pair_style pace: ") + exception.what());
    }
    accumulate(evaluator, i, jnum, jlist, eflag);
    if (want_gamma) gamma_per_atom[i] = gamma_evaluator->max_gamma_grade;
  }

  if (vflag_fdotr) virial_fdotr_compute();
}

void *PairACE::extract(const char *name, int &dim)
{
  dim = 0;
  if (extrapolation && std::strcmp(name, "gamma_flag") == 0) return &gamma_flag;
  return nullptr;
}

void *PairACE::extract_peratom(const char *name, int &ncol)
{
  ncol = 0;
  if (extrapolation && std::strcmp(name, "gamma") == 0) return gamma_per_atom;
  return nullptr;
}

double PairACE::memory_usage()
{
  return static_cast<double>(gamma_capacity) * sizeof(double);
}

}    // namespace MlipAutopipe
