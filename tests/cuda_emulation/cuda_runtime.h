// A CPU stand-in for the parts of the CUDA runtime and device language that csrc/copula's .cu
// files use, so that their kernels run on the host (tests/test_cuda_emulation.py,
// tests/cpp/test_cuda_emulation.cpp): in kernels that synchronise, every CUDA thread of a block
// is an OS thread, blocks run one after another, __syncthreads() is a barrier over the block,
// warp shuffles and ballots exchange values through a barrier over the warp, and __shared__
// variables are function statics (one block at a time, so one copy suffices); the threads of
// other kernels run one after another. Launches
// (rewritten from <<<...>>> by rewrite_launches.py) run to completion before they return.
//
// What it checks: indexing, the work split over blocks, threads and grid-stride loops, barriers
// and warp-collective code (a barrier that not every live thread of the block or warp reaches
// aborts the process with a message after 60 s instead of hanging), and the results against the
// CPU kernels. What it cannot: the GPU memory model (a race shows only when the OS happens to
// schedule the threads so), device math (libdevice rounds differently from glibc in the last
// bits), register and occupancy limits, and launch checks beyond the block and grid sizes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9 };
typedef struct CUstream_st* cudaStream_t;

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1) : x(x_) {}
};

namespace ccnn_emu {

// A reusable barrier for `count` threads; a thread that has left the kernel is no longer waited
// for.
class Barrier {
 public:
  explicit Barrier(int count) : count_(count) {}
  void wait(const char* what) {
    std::unique_lock<std::mutex> lock(mutex_);
    const std::uint64_t generation = generation_;
    if (++waiting_ >= count_) {
      release();
      return;
    }
    if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != generation; })) {
      std::fprintf(stderr, "cuda emulation: %s not reached by every thread (deadlock)\n", what);
      std::abort();
    }
  }
  void leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    --count_;
    if (waiting_ > 0 && waiting_ >= count_) release();
  }

 private:
  void release() {
    waiting_ = 0;
    ++generation_;
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_;
  int waiting_ = 0;
  std::uint64_t generation_ = 0;
};

struct Warp {
  explicit Warp(int lanes) : barrier(lanes) {}
  Barrier barrier;
  std::uint64_t slots[32] = {};
};

struct Block {
  explicit Block(int threads) : barrier(threads) {
    for (int first = 0; first < threads; first += 32) {
      warps.emplace_back(new Warp(threads - first < 32 ? threads - first : 32));
    }
  }
  Barrier barrier;
  std::vector<std::unique_ptr<Warp>> warps;
};

struct ThreadState {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
  Block* block = nullptr;
};

inline ThreadState& state() {
  static thread_local ThreadState s;
  return s;
}

inline cudaError_t& last_error() {
  static cudaError_t error = cudaSuccess;
  return error;
}

// Runs body() as every thread of a grid x block launch. Collective kernels (they call
// __syncthreads or warp shuffles or ballots): block.x OS threads, which run the blocks one after
// another (a barrier between blocks, so that a block's __shared__ statics are its own). Others:
// their threads one after another on the calling thread (any order is a valid schedule for
// threads that never wait for each other), which is much faster.
template <typename Body>
void launch(dim3 grid, dim3 block, bool collective, const Body& body) {
  static std::mutex one_launch_at_a_time;
  std::lock_guard<std::mutex> lock(one_launch_at_a_time);
  if (block.x < 1 || block.x > 1024 || grid.x < 1 || grid.x > 2147483647u) {
    last_error() = cudaErrorInvalidConfiguration;
    return;
  }
  ThreadState& caller = state();
  if (!collective) {
    caller.block_dim = block;
    caller.grid_dim = grid;
    caller.block = nullptr;  // (a barrier here is a misclassified kernel: see my_block)
    for (unsigned b = 0; b < grid.x; ++b) {
      caller.block_idx = dim3(b);
      for (unsigned t = 0; t < block.x; ++t) {
        caller.thread_idx = dim3(t);
        body();
      }
    }
    return;
  }
  std::vector<std::unique_ptr<Block>> blocks(grid.x);
  for (std::unique_ptr<Block>& b : blocks) b.reset(new Block(static_cast<int>(block.x)));
  Barrier block_done(static_cast<int>(block.x));
  std::vector<std::thread> threads;
  threads.reserve(block.x);
  for (unsigned t = 0; t < block.x; ++t) {
    threads.emplace_back([&, t] {
      ThreadState& s = state();
      s.thread_idx = dim3(t);
      s.block_dim = block;
      s.grid_dim = grid;
      for (unsigned b = 0; b < grid.x; ++b) {
        s.block_idx = dim3(b);
        s.block = blocks[b].get();
        body();
        s.block->warps[t / 32]->barrier.leave();
        s.block->barrier.leave();
        block_done.wait("the end of a block");
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

inline Block& my_block() {
  if (state().block == nullptr) {
    std::fprintf(stderr, "cuda emulation: a barrier or warp collective in a kernel launched as independent threads\n");
    std::abort();
  }
  return *state().block;
}

inline Warp& my_warp() { return *my_block().warps[state().thread_idx.x / 32]; }

// Every lane of the warp publishes `value`; returns what lane `source` published (its own value
// when source is outside the warp).
template <typename T>
T exchange(T value, int source, const char* what) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t), "exchange: 8-byte values at most");
  Warp& warp = my_warp();
  const int lane = static_cast<int>(state().thread_idx.x % 32);
  std::memcpy(&warp.slots[lane], &value, sizeof(T));
  warp.barrier.wait(what);
  T out = value;
  if (source >= 0 && source < 32 && source != lane) std::memcpy(&out, &warp.slots[source], sizeof(T));
  warp.barrier.wait(what);
  return out;
}

}  // namespace ccnn_emu

#define threadIdx (::ccnn_emu::state().thread_idx)
#define blockIdx (::ccnn_emu::state().block_idx)
#define blockDim (::ccnn_emu::state().block_dim)
#define gridDim (::ccnn_emu::state().grid_dim)

inline void __syncthreads() { ::ccnn_emu::my_block().barrier.wait("__syncthreads"); }

template <typename T>
T __shfl_down_sync(unsigned, T value, int delta) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  return ::ccnn_emu::exchange(value, lane + delta, "__shfl_down_sync");
}

template <typename T>
T __shfl_up_sync(unsigned, T value, int delta) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  return ::ccnn_emu::exchange(value, lane - delta, "__shfl_up_sync");
}

inline unsigned __ballot_sync(unsigned mask, bool predicate) {
  ::ccnn_emu::Warp& warp = ::ccnn_emu::my_warp();
  const int lane = static_cast<int>(threadIdx.x % 32);
  warp.slots[lane] = predicate ? 1 : 0;
  warp.barrier.wait("__ballot_sync");
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l) {
    if (warp.slots[l] && (mask >> l & 1u)) bits |= 1u << l;
  }
  warp.barrier.wait("__ballot_sync");
  return bits;
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  static std::mutex atomics;
  std::lock_guard<std::mutex> lock(atomics);
  const unsigned long long old = *address;
  if (value < old) *address = value;
  return old;
}

inline float __int_as_float(int bits) {
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
inline double __longlong_as_double(long long bits) {
  double out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
inline float __fmul_rn(float a, float b) { return a * b; }  // (built with -ffp-contract=off)
inline double __dmul_rn(double a, double b) { return a * b; }

inline cudaError_t cudaGetLastError() {
  const cudaError_t error = ::ccnn_emu::last_error();
  ::ccnn_emu::last_error() = cudaSuccess;
  return error;
}
