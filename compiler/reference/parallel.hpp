// parallel.hpp: runs independent (b, h) work items on reference_threads() threads. Items write
// only their own results; callers reduce shared sums afterwards in a fixed order, so results do
// not depend on the thread count.
#pragma once

#include <functional>

namespace ttt::ref {

// Calls fn(i) for i in [0, n), spread over threads; rethrows the first exception in the caller.
void parallel_for(int n, const std::function<void(int)>& fn);

}  // namespace ttt::ref
