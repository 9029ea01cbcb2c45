// A tiny sd_notify(3), without libsystemd: tells systemd's service manager about `mmserve serve`
// (a unit of Type=notify, deploy/systemd/mmserve.service) that the models have loaded
// ("READY=1"), what it is doing ("STATUS=..."), and that it is draining ("STOPPING=1"). With
// readiness sent after the model loads, `systemctl start` returns, and units ordered After= it
// start, only once the server can answer, not when the process has merely forked. The protocol
// is one datagram on the AF_UNIX socket $NOTIFY_SOCKET names (a path, or an abstract socket
// written with a leading '@'), so it takes a dozen lines here instead of a link dependency on
// libsystemd (and its own dependencies) in every build and image.
//
// Threading: thread-safe and stateless (each call opens, sends on and closes its own socket); it
// reads $NOTIFY_SOCKET with getenv, so it must not race a setenv. It never unsets the variable
// (that would not be thread-safe); NotifyAccess=main makes systemd ignore any child's messages.
#pragma once

#include <string>
#include <string_view>

namespace mmserve::cli {

// Sends `state` (newline-separated assignments, such as "READY=1\nSTATUS=ready") to the service
// manager. Returns true when the datagram was sent; false when $NOTIFY_SOCKET is unset or empty
// (not run by systemd: nothing to do), is not an absolute path or '@' name, or the send failed.
// Never throws.
bool systemd_notify(std::string_view state) noexcept;

// "STATUS=" + text made safe for one assignment: control characters (a newline would start
// another assignment) become spaces, and it is cut, on a UTF-8 character boundary, to a length
// well under what systemd reads of one datagram (it drops longer ones whole).
std::string systemd_status(std::string_view text);

}  // namespace mmserve::cli
