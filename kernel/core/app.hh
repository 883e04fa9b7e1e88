// Applications are linked into the kernel and call it directly (no system
// calls). Each app file (apps/) registers itself with REGISTER_APP; the
// registry lives here, in core, so the kernel never names an app: it looks
// the name up from the app= option and runs main(argc, argv) in a thread
// named "main". main's return value becomes QEMU's exit status
// (arch/x64/debug_exit.cc has the mapping).
#pragma once

struct app_desc {
    const char* name;
    const char* usage;  // one line: the arguments
    int (*main)(int argc, char** argv);
};

// The registry is a linker section of pointers: adding an app is adding one
// file. (Pointers, not the structs: the compiler may over-align a struct,
// which would leave gaps between entries.)
#define REGISTER_APP(ident, name, usage, fn)            \
    static const app_desc ident = {name, usage, fn}; \
    __attribute__((used, section(".apps"))) static const app_desc* const ident##_entry = &ident

namespace apps {
const app_desc* find(const char* name);
void list();  // prints the registered apps and their usage
}  // namespace apps
