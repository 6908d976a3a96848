// Internal: the admin listener's connection handler (routes in admin.cpp).
#pragma once

#include "gateway/state.hpp"

namespace tunnelgate::gateway {

awaitable<void> run_admin_connection(std::shared_ptr<shared_state> st, tcp::socket sock);

}  // namespace tunnelgate::gateway
