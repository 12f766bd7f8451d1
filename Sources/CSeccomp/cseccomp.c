// The only user of libseccomp: builds and loads the shim's allow-list (Seccomp/ShimSyscalls.swift).
#include "cseccomp.h"

#include <errno.h>
#include <stddef.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>

int cseccomp_confine(int mode, const char *const *names, int count, int *unknown) {
    if (mode != 1 && mode != 2) return -EINVAL;
    uint32_t fallback = mode == 2 ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_LOG;
    scmp_filter_ctx filter = seccomp_init(fallback);
    if (filter == NULL) return -ENOMEM;
    int rc = seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1);
    // Refusals reach the kernel log (audit type 1326) too, so an operator can see what a
    // new runsc or kernel made the shim try.
    if (rc == 0 && mode == 2) rc = seccomp_attr_set(filter, SCMP_FLTATR_CTL_LOG, 1);
    for (int i = 0; rc == 0 && i < count; i++) {
        int number = seccomp_syscall_resolve_name(names[i]);
        if (number == __NR_SCMP_ERROR) {
            *unknown = i;
            rc = -EINVAL;
            break;
        }
        rc = seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0);
    }
    if (rc == 0) rc = seccomp_load(filter);
    seccomp_release(filter);
    return rc;
}

int cseccomp_current_mode(void) {
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
}

#ifdef WARDEN_TEST_HOOKS
int cseccomp_probe_ptrace(int pid) {
    errno = 0;
    long rc = ptrace(PTRACE_PEEKDATA, pid, NULL, NULL);
    return rc == -1 ? errno : 0;
}
#endif
