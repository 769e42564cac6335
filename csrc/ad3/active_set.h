// Internal to csrc/ad3: the active-set method of the AD3 paper (Martins et al., JMLR 2015,
// section 6) for factors given by a MAP oracle over their configurations: the local problem
//     min 1/2 ||M w - x||^2 - a . (A w)   over distributions w on the configurations,
// M: the configurations' 0/1 link vectors, A: their 0/1 additional-score indicators. The active set
// is kept between AD3 iterations (warm start). Subclasses give the oracle (best_config) and
// evaluate().
#pragma once

#include <vector>

#include "ad3/factors.h"

namespace ccnn {
namespace ad3 {
namespace detail {

// A configuration: its links (0/1) and the indices of the additional scores it collects.
struct Config {
  std::vector<char> y;
  std::vector<int> extras;
};

class ActiveSetFactor : public LocalFactor {
 public:
  using LocalFactor::LocalFactor;

  // The best configuration for link scores s and additional scores a; returns its value.
  virtual double best_config(const double* s, const double* a, Config& config) = 0;

  double map(const double* s, const double* a, double* y, double* u) override;
  void solve_qp(const double* x, const double* a, double* q, double* u) override;

 protected:
  Config scratch_;

 private:
  void build_kkt();
  void marginals(double* q) const;
  void append(const Config& config, double weight);  // keeps gram_ in step
  void remove(int c);
  void add_candidate();

  std::vector<Config> active_;
  std::vector<double> gram_;  // overlaps of the active configurations (k x k, row-major)
  std::vector<double> weights_;
  Config candidate_;
  std::vector<double> kkt_, rhs_, residual_;
};

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
