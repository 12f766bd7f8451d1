// Private to CLinuxSys (not in include/, so Swift never sees it): the msghdr setup that
// every SCM_RIGHTS send or receive needs, written once.
#ifndef CLINUXSYS_MESSAGE_H
#define CLINUXSYS_MESSAGE_H

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/// The ancillary buffer for up to `count` descriptors, aligned as a cmsghdr must be.
#define CLINUX_FD_CONTROL(count)                        \
    union {                                             \
        char buf[CMSG_SPACE(sizeof(int) * (count))];    \
        struct cmsghdr align;                           \
    }

/// A zeroed message of one iovec over `data`, with `control` (zeroed too) as its ancillary buffer.
static inline void clinux_message_init(struct msghdr *msg, struct iovec *iov, void *data, size_t length, void *control,
                                       size_t control_length) {
    iov->iov_base = data;
    iov->iov_len = length;
    memset(control, 0, control_length);
    memset(msg, 0, sizeof(*msg));
    msg->msg_iov = iov;
    msg->msg_iovlen = 1;
    msg->msg_control = control;
    msg->msg_controllen = control_length;
}

#endif
