// critest's nonewprivs:1.3 stand-in: installed setuid root; prints the effective uid, which is
// 0 when privilege escalation is allowed and the caller's own when no_new_privs holds.
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
