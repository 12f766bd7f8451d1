// `ipcs -m` for critest's busybox stand-in (Debian's static busybox has no ipcs): lists the
// System V shared memory segments of the caller's IPC namespace in util-linux's layout. The
// HostIpc specs look for the id of a segment made on the host in this output.
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/shm.h>

int main(void) {
    printf("\n------ Shared Memory Segments --------\nkey        shmid      owner      perms      bytes      nattch     status\n");
    struct shm_info info;
    int highest = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
    for (int index = 0; index <= highest; index++) {
        struct shmid_ds segment;
        int id = shmctl(index, SHM_STAT, &segment);
        if (id < 0) continue;
        printf("0x%08x %-10d %-10u %-10o %-10zu %-10lu\n", (unsigned)segment.shm_perm.__key, id,
               (unsigned)segment.shm_perm.uid, (unsigned)(segment.shm_perm.mode & 0777), (size_t)segment.shm_segsz,
               (unsigned long)segment.shm_nattch);
    }
    return 0;
}
