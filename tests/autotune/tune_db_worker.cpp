// tune_db_worker.cpp: a separate process for the concurrent-writer test: writes N records of its
// own and one candidate of its own into a record every worker shares, one put() each.
//   tune_db_worker DIR WORKER_INDEX N
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tune_test_util.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: tune_db_worker DIR WORKER_INDEX N\n");
    return 2;
  }
  using namespace ttt::autotune;
  using namespace ttt::autotune::test_util;
  const int worker = std::atoi(argv[2]), n = std::atoi(argv[3]);
  const ttt::Spec spec = example_spec("mlp2");
  const ttt::Schedule heuristic = ttt::default_schedule(spec, ttt::Target::for_arch("sm_90a"));
  TuneDb db(argv[1]);
  for (int i = 0; i < n; ++i) {
    ttt::Schedule mine = heuristic;
    mine.threads = 64 + 32 * worker;  // distinct per worker
    Record own =
        record_for(spec, Pass::forward, 1 << (worker * n + i + 1), {measured(mine, 1)}, heuristic);
    Record shared = record_for(spec, Pass::backward, 1, {measured(mine, 1.0 + worker)}, heuristic);
    db.put(test_fingerprint(), {own, shared});
  }
  return 0;
}
