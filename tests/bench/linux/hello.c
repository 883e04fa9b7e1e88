// hello: the application start marker for boot-time measurement; the host
// times QEMU start to this line, as it does for our kernel's hello.
#include "common.h"

int main(void)
{
    printf("linux: app main at %llu us\n", (unsigned long long)(now_ns() / 1000));
    return 0;
}
