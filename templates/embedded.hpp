// embedded.hpp: the device template headers compiled into the binary (see embed.cmake).
#pragma once

#include <span>

namespace ttt::templates {

struct Header {
  const char* name;  // include name, e.g. "tttc/ops.cuh"
  const char* text;
};

std::span<const Header> headers();

}  // namespace ttt::templates
