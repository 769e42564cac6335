// Internal to csrc/ad3: the active-set method of the AD3 paper (Martins et al., JMLR 2015,
// section 6) for factors given by a MAP oracle over their configurations: the local problem
//     min 1/2 ||M w - x||^2 - a . (A w)   over distributions w on the configurations,
// M: the configurations' 0/1 link vectors, A: their 0/1 additional-score indicators. The active set
// is kept between AD3 iterations (warm start). Subclasses give the oracle (best_config) and
// evaluate().
//
// The active configurations are kept sparse (the links that are 1), and with them the inverse H of
// the bordered Gram matrix K = [0 1'; 1 G] (G: the configurations' overlaps), updated in O(k^2)
// when a configuration enters or leaves (block inverse / Schur complement), as the reference's
// GenericFactor does, and recomputed from G every so often against rounding drift. No allocation
// once the buffers have grown to the largest active set.
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
  struct Sparse {
    std::vector<int> on;      // links that are 1, increasing
    std::vector<int> extras;  // additional scores collected
  };
  // The candidate (best_config's dense output) as a sparse configuration.
  void sparsify(const Config& config, Sparse& out) const;
  bool is_active(const Sparse& c) const;
  void marginals(double* q) const;
  // Inserts candidate_ with `weight`; false (nothing inserted) when it is affinely dependent on the
  // active set, with the direction d of the dependency (sum 0 over the set and -1 on candidate_) in
  // direction_.
  bool insert(double weight);
  void remove(int c);    // swaps c with the last configuration, then drops it
  bool refresh_inverse();  // H from G by Gauss-Jordan; false when singular
  void add_candidate();
  double& h(int r, int c) { return inverse_[static_cast<std::size_t>(r) * stride_ + c]; }
  double& g(int r, int c) { return gram_[static_cast<std::size_t>(r) * stride_ + c]; }
  void reserve(int k);   // room for k configurations

  std::vector<Sparse> active_;      // the first k_ are active (the rest keep their capacity)
  int k_ = 0;
  int stride_ = 0;                  // row stride of gram_ and inverse_ (>= k_ + 1)
  int updates_ = 0;                 // rank-one updates since inverse_ was last recomputed
  std::vector<double> gram_;        // G (k x k)
  std::vector<double> inverse_;     // H = K^{-1}, (k + 1) x (k + 1), index 0: the multiplier
  std::vector<double> weights_, rhs_, z_, direction_, residual_, overlap_, work_;
  std::vector<char> mark_;
  Sparse candidate_;
};

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
