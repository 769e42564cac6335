// The factor given by the caller's MAP oracle (factor_graph.h, kOracle / MapOracle): an
// active-set factor whose best_config asks the oracle, checks its answer and computes its value.
#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "ad3/active_set.h"

namespace ccnn {
namespace ad3 {
namespace detail {
namespace {

class OracleFactor : public ActiveSetFactor {
 public:
  OracleFactor(int degree, int num_additional, const std::shared_ptr<const MapOracle>& oracle)
      : ActiveSetFactor(degree, num_additional), oracle_(own_copy_or(oracle)),
        link_mark_(degree, 0), extra_mark_(num_additional, 0) {}

  double best_config(const double* s, const double* a, Config& config) override {
    config.on.clear();
    config.extras.clear();
    oracle_->maximize(s, a, config.on, config.extras);
    check(config.on, link_mark_, "maximize", "link");
    check(config.extras, extra_mark_, "maximize", "additional score");
    std::sort(config.extras.begin(), config.extras.end());  // (the active set compares them as lists)
    double value = 0.0;
    for (int i : config.on) value += s[i];
    for (int k : config.extras) value += a[k];
    return value;
  }

  double evaluate(const int* y, const double* a, double* u) const override {
    extras_.clear();
    if (!oracle_->evaluate(y, extras_)) return -std::numeric_limits<double>::infinity();
    check(extras_, extra_mark_, "evaluate", "additional score");
    if (u != nullptr) std::fill(u, u + num_additional(), 0.0);
    double value = 0.0;
    for (int k : extras_) {
      value += a[k];
      if (u != nullptr) u[k] = 1.0;
    }
    return value;
  }

 private:
  // Throws std::invalid_argument unless `indices` are distinct and within [0, marks.size()).
  void check(const std::vector<int>& indices, std::vector<int>& marks, const char* method, const char* what) const {
    if (++stamp_ == std::numeric_limits<int>::max()) {
      std::fill(link_mark_.begin(), link_mark_.end(), 0);
      std::fill(extra_mark_.begin(), extra_mark_.end(), 0);
      stamp_ = 1;
    }
    const int size = static_cast<int>(marks.size());
    for (int i : indices) {
      if (i < 0 || i >= size) {
        throw std::invalid_argument(std::string("oracle factor: ") + method + " gave " + what + " " +
                                    std::to_string(i) + ", expected indices in [0, " + std::to_string(size) + ")");
      }
      if (marks[i] == stamp_) {
        throw std::invalid_argument(std::string("oracle factor: ") + method + " gave " + what + " " +
                                    std::to_string(i) + " twice");
      }
      marks[i] = stamp_;
    }
  }

  // The oracle's copy for this solver (MapOracle::clone), else the shared one.
  static std::shared_ptr<const MapOracle> own_copy_or(const std::shared_ptr<const MapOracle>& shared) {
    std::unique_ptr<MapOracle> copy = shared->clone();
    if (copy == nullptr) return shared;
    return std::shared_ptr<const MapOracle>(std::move(copy));
  }

  std::shared_ptr<const MapOracle> oracle_;
  // check's scratch: the stamp of the last answer listing each index.
  mutable std::vector<int> link_mark_, extra_mark_;
  mutable int stamp_ = 0;
  mutable std::vector<int> extras_;  // evaluate's answer
};

}  // namespace

std::unique_ptr<LocalFactor> make_oracle_factor(const FactorSpec& spec) {
  // (add_factor keeps num_additional within kMaxAdditional, an int)
  const int degree = static_cast<int>(spec.links.size());
  std::vector<char> negated = spec.negated;
  negated.resize(degree, 0);
  return make_negated(std::make_unique<OracleFactor>(degree, static_cast<int>(spec.num_additional), spec.oracle),
                      std::move(negated));
}

}  // namespace detail
}  // namespace ad3
}  // namespace ccnn
