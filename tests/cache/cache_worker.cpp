// cache_worker.cpp: a separate process for the multi-process cache tests. It calls get_or_build
// on sample_inputs() and records each build by appending a line to a count file (O_APPEND, so
// concurrent appends never interleave).
//   cache_worker DIR COUNT_FILE OUT_FILE build|hang
// build: the builder sleeps 300 ms and returns a binary naming this pid; OUT_FILE receives
//        "<origin> <binary>". hang: the builder records itself, then sleeps until killed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "cache_test_util.hpp"

namespace {

void append_line(const char* path, const std::string& line) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) std::_Exit(3);
  std::string text = line + "\n";
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: cache_worker DIR COUNT_FILE OUT_FILE build|hang\n");
    return 2;
  }
  const std::string mode = argv[4];
  const char* count_file = argv[2];
  using namespace ttt::cache;
  KernelCache cache({argv[1], 0});
  auto result =
      cache.get_or_build(test_util::sample_inputs(), test_util::sample_description(), [&] {
        append_line(count_file, "build " + std::to_string(::getpid()));
        if (mode == "hang")
          for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        BuildOutput out;
        out.binary = "cubin-built-by-pid-" + std::to_string(::getpid());
        return out;
      });
  std::ofstream(argv[3]) << to_string(result.origin) << " " << result.entry->binary;
  return 0;
}
