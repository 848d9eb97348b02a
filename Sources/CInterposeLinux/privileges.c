// Dropping root to the proxy's user while keeping only the capabilities the flow engine needs.
#define _GNU_SOURCE
#include "CInterposeLinux.h"

#include <errno.h>
#include <grp.h>
#include <unistd.h>
#include <sys/capability.h>
#include <sys/prctl.h>

static int set_caps(int net_admin, int net_raw, int change_ids) {
    cap_value_t list[4];
    int n = 0;
    if (change_ids) { list[n++] = CAP_SETUID; list[n++] = CAP_SETGID; }
    if (net_admin) list[n++] = CAP_NET_ADMIN;
    if (net_raw) list[n++] = CAP_NET_RAW;
    cap_t caps = cap_init(); // all clear
    if (!caps) return -1;
    if (n > 0 && (cap_set_flag(caps, CAP_PERMITTED, n, list, CAP_SET) < 0 ||
                  cap_set_flag(caps, CAP_EFFECTIVE, n, list, CAP_SET) < 0)) {
        cap_free(caps);
        return -1;
    }
    int r = cap_set_proc(caps);
    int e = errno;
    cap_free(caps);
    errno = e;
    return r;
}

int cinterpose_drop_privileges(unsigned uid, unsigned gid, int keep_net_admin, int keep_net_raw, const char **failed_step) {
    int keep = keep_net_admin || keep_net_raw;
    // Narrow first (keeping what setuid/setgid need), so nothing else survives the uid change.
    if (keep && set_caps(keep_net_admin, keep_net_raw, 1) < 0) { *failed_step = "cap_set_proc (narrow)"; return -1; }
    if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) { *failed_step = "prctl(PR_SET_KEEPCAPS, 1)"; return -1; }
    if (setgroups(0, NULL) < 0) { *failed_step = "setgroups"; return -1; }
    if (setresgid(gid, gid, gid) < 0) { *failed_step = "setresgid"; return -1; }
    if (setresuid(uid, uid, uid) < 0) { *failed_step = "setresuid"; return -1; }
    // The uid change cleared the effective set; raise the kept ones again (permitted still holds them).
    if (keep && set_caps(keep_net_admin, keep_net_raw, 0) < 0) { *failed_step = "cap_set_proc (raise)"; return -1; }
    if (keep && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) { *failed_step = "prctl(PR_SET_KEEPCAPS, 0)"; return -1; }
    if (!keep && set_caps(0, 0, 0) < 0) { *failed_step = "cap_set_proc (clear)"; return -1; }
    return 0;
}
