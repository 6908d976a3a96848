// tunnelctl — the tunnelgate administrator's command line.
#include <array>

#include "commands.hpp"

int main(int argc, char** argv) {
  const std::array groups{
      tunnelctl::dtr_group,          tunnelctl::ca_group,   tunnelctl::cert_group,
      tunnelctl::device_group,       tunnelctl::zone_group, tunnelctl::namedlocation_group,
      tunnelctl::posture_sync_group,
  };
  return tunnelctl::dispatch(groups, argc, argv);
}
