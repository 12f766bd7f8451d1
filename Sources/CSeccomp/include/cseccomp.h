#ifndef CSECCOMP_H
#define CSECCOMP_H

// Loads an allow-list filter for every thread of the process (TSYNC). mode 1: a syscall off
// the list is logged by the kernel and runs; mode 2: it fails with EPERM and is logged.
// Returns 0, or a negative errno; on an unknown name, -EINVAL with *unknown set to its index.
int cseccomp_confine(int mode, const char *const *names, int count, int *unknown);

// Which seccomp mode the calling thread runs under (0 none, 2 filter), from prctl.
int cseccomp_current_mode(void);

// ptrace(PTRACE_PEEKDATA) on pid: 0, or the errno (for the refusal probe).
int cseccomp_probe_ptrace(int pid);

#endif
