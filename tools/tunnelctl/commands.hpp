// The command groups tunnelctl offers; each lives in its own <group>_cmd.cpp.
#pragma once

#include "cli.hpp"

namespace tunnelctl {

extern const group dtr_group;   // dtr_cmd.cpp
extern const group ca_group;    // ca_cmd.cpp
extern const group cert_group;  // cert_cmd.cpp

extern const group device_group;  // device_cmd.cpp (issue 4)

extern const group zone_group;           // zone_cmd.cpp (issue 6)
extern const group namedlocation_group;  // zone_cmd.cpp (issue 6)

extern const group posture_sync_group;  // posture_cmd.cpp (issue 15)

}  // namespace tunnelctl
