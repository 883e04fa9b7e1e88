// Leaving QEMU with a status, through the isa-debug-exit device.
#pragma once

namespace debug_exit {

constexpr int max_app_status = 125;
constexpr int status_refused = 125;  // the kernel could not start the app (bad command line)

// Exit QEMU reporting an application status 0..125 (others are clamped to 125).
[[noreturn]] void exit_status(int status);

// Exit QEMU reporting a kernel panic.
[[noreturn]] void exit_panic();

}  // namespace debug_exit
