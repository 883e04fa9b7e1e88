#include "core/app.hh"

#include "core/console.hh"
#include "lib/string.hh"

extern "C" const app_desc* const __apps_start[];
extern "C" const app_desc* const __apps_end[];

namespace apps {

const app_desc* find(const char* name)
{
    for (const app_desc* const* a = __apps_start; a < __apps_end; a++) {
        if (!strcmp((*a)->name, name)) {
            return *a;
        }
    }
    return nullptr;
}

void list()
{
    kprintf("apps:\n");
    for (const app_desc* const* a = __apps_start; a < __apps_end; a++) {
        kprintf("  %-10s %s\n", (*a)->name, (*a)->usage);
    }
}

}  // namespace apps
