// Internal: the admin listener's connection handler (routes in admin.cpp).
#pragma once

#include "gateway/state.hpp"

namespace tunnelgate::gateway {

/// What /readyz answers: "ready" or "not ready: <parts>" with details; `ready` set. The
/// daemon sends READY=1 (sd_notify) only once this says ready.
std::string readiness(const shared_state& st, bool& ready);

awaitable<void> run_admin_connection(std::shared_ptr<shared_state> st, tcp::socket sock);

}  // namespace tunnelgate::gateway
